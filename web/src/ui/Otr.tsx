// Off the record (O2–O8): the OTR side panel of a direct message, and the invitation
// banner shown above the composer so an invitation is seen with the panel closed.

import type { OtrManager, OtrState } from "../state/otr";
import type { Workspace } from "../state/workspace";
import { useAction, useEmitter } from "./hooks";
import { ErrorText, Icon, Panel } from "./kit";
import "./otr.css";

function peerName(ws: Workspace, roomId: string): string {
  const room = ws.rooms.get(roomId);
  return room ? ws.roomTitle(room) : "The other person";
}

/** What the state is called in the panel. */
function phaseLabel(st: OtrState, name: string): string {
  switch (st.phase) {
    case "off":
      return "Not started";
    case "offering":
      return st.byPeer ? "Connecting…" : `Waiting for ${name} to accept…`;
    case "offered":
      return `Invitation from ${name}`;
    case "established":
      return "On: messages are off the record";
    case "refreshing":
      return "Refreshing keys…";
    case "ended":
      return "Ended";
    case "broken":
      return "Broken";
    case "declined":
      return st.byPeer ? `${name} declined` : "Declined";
    case "timeout":
      return "No answer";
  }
}

export function OtrPanel(props: { ws: Workspace; otr: OtrManager; roomId: string; onClose: () => void }) {
  const { ws, otr, roomId } = props;
  useEmitter(ws);
  const action = useAction((f: () => Promise<void>) => f());
  const st = otr.state(roomId);
  const why = otr.unavailable(roomId);
  const name = peerName(ws, roomId);
  const idle = st.phase === "off" || st.phase === "ended" || st.phase === "declined" || st.phase === "timeout";
  const canRefresh = st.phase === "established" || st.phase === "broken";
  const canEnd = st.phase === "offering" || st.phase === "established" || st.phase === "refreshing" || st.phase === "broken";
  return (
    <Panel title="OTR" onClose={props.onClose}>
      <p class="otr-intro">
        Off the record (OTR) is a private conversation with {name}: messages go only through the live connection between your two browsers, are never stored on the server, and vanish when the session ends or this tab is closed.
      </p>
      <div class={`otr-status otr-${st.phase}`} role="status">
        <Icon name="key-bold" class="otr-status-icon" />
        <div>
          <strong>{phaseLabel(st, name)}</strong>
          {st.reason && <p class="otr-reason">{st.reason}</p>}
        </div>
      </div>
      {st.phase === "offered" && (
        <div class="otr-invite">
          <p>{name} wants to start an off-the-record conversation.</p>
          <div class="otr-actions">
            <button type="button" class="button primary" disabled={action.busy || why !== null} onClick={() => void action.run(() => otr.accept(roomId))}>
              Accept
            </button>
            <button type="button" class="button" disabled={action.busy} onClick={() => void action.run(() => otr.decline(roomId))}>
              Decline
            </button>
          </div>
        </div>
      )}
      {why && st.phase !== "established" && (
        <p class="otr-unavailable" role="note">
          {why}
        </p>
      )}
      <div class="otr-actions">
        {idle && (
          <button type="button" class="button primary" disabled={action.busy || why !== null} onClick={() => void action.run(() => otr.start(roomId))}>
            Start OTR
          </button>
        )}
        {canRefresh && (
          <button type="button" class="button" disabled={action.busy || why !== null} onClick={() => void action.run(() => otr.refresh(roomId))}>
            Refresh keys
          </button>
        )}
        {canEnd && (
          <button type="button" class="button danger" disabled={action.busy} onClick={() => void action.run(() => otr.end(roomId))}>
            End OTR
          </button>
        )}
      </div>
      <ErrorText error={action.error} />
    </Panel>
  );
}

/** The invitation above the composer while the other person's offer waits. */
export function OtrInvitation(props: { ws: Workspace; otr: OtrManager; roomId: string }) {
  const { ws, otr, roomId } = props;
  useEmitter(ws);
  const action = useAction((f: () => Promise<void>) => f());
  const st = otr.state(roomId);
  if (st.phase !== "offered") return null;
  const name = peerName(ws, roomId);
  const why = otr.unavailable(roomId);
  return (
    <div class="otr-invitation" role="alert">
      <Icon name="key-bold" class="otr-status-icon" />
      <div class="otr-invitation-text">
        <strong>{name} wants to start an off-the-record conversation</strong>
        {st.reason && <span class="otr-reason">{st.reason}</span>}
        {why && <span class="otr-reason">{why}</span>}
        <ErrorText error={action.error} />
      </div>
      <button type="button" class="button primary small" disabled={action.busy || why !== null} onClick={() => void action.run(() => otr.accept(roomId))}>
        Accept
      </button>
      <button type="button" class="button small" disabled={action.busy} onClick={() => void action.run(() => otr.decline(roomId))}>
        Decline
      </button>
    </div>
  );
}
