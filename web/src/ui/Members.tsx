// A room's members: presence, owners, invite and remove; in a room with a signed state,
// who the signatures do not vouch for, and whom they still list though the server does not.

import { useEffect, useState } from "preact/hooks";
import type { Room } from "../api/types";
import type { Workspace } from "../state/workspace";
import { useAction } from "./hooks";
import { VerifyDialog } from "./E2e";
import { ErrorText, Icon } from "./kit";
import { initial } from "./Sidebar";

export function MembersPanel(props: { ws: Workspace; room: Room; owner: boolean }) {
  const { ws, room } = props;
  const [invitee, setInvitee] = useState("");
  const members = ws.members.get(room.id) ?? [];
  const invite = useAction(async () => {
    await ws.invite(room.id, invitee);
    setInvitee("");
  });
  const remove = useAction((userId: string) => ws.removeMember(room.id, userId));
  const [verifying, setVerifying] = useState<string | null>(null);
  // In a room with a signed state, who the signatures vouch for (B11), and those they
  // still list whom the server no longer does (an administrator removed them).
  const [signed, setSigned] = useState<{ vouched: Set<string>; unlisted: string[] } | null>(null);
  const listed = members.map((m) => m.user_id).join(",");
  useEffect(() => {
    void ws.e2e
      .chain(room.id)
      .then((chain) => {
        if (!chain) return setSigned(null);
        const inChain: string[] = chain.state.memberList();
        const onServer = new Set(listed.split(","));
        setSigned({ vouched: new Set(inChain), unlisted: inChain.filter((u) => !onServer.has(u)) });
      })
      .catch(() => setSigned(null));
  }, [room.id, listed, room.encrypted]);
  const vouched = signed?.vouched ?? null;
  const canInvite = room.kind !== "direct" && (props.owner || !room.private);
  return (
    <div class="members">
      {canInvite && (
        <form
          class="invite-form"
          onSubmit={(e) => {
            e.preventDefault();
            void invite.run();
          }}
        >
          <label for="invite-user">Add people</label>
          <div class="inline">
            <input id="invite-user" value={invitee} placeholder="username" onInput={(e) => setInvitee(e.currentTarget.value)} />
            <button type="submit" class="button primary" disabled={!invitee.trim() || invite.busy}>
              Invite
            </button>
          </div>
          <ErrorText error={invite.error} />
        </form>
      )}
      <ErrorText error={remove.error} />
      <ul class="member-list" aria-label="Room members">
        {members.map((m) => (
          <li key={m.user_id}>
            <span class="avatar" aria-hidden="true">
              {initial(ws.displayName(m.user_id))}
            </span>
            <span class={ws.online.has(m.user_id) ? "presence online" : "presence"} role="img" aria-label={ws.online.has(m.user_id) ? "online" : "offline"} />
            <span class="member-name">
              {ws.displayName(m.user_id)} <span class="muted">@{m.username}</span>
            </span>
            {m.owner && <span class="tag">Owner</span>}
            {vouched && !vouched.has(m.user_id) && m.forced_by && (
              <span class="tag warn" title="An administrator added this person without the room's say; no member signed them in, so they get no keys.">
                Added by an administrator — not verified by the room
              </span>
            )}
            {vouched && !vouched.has(m.user_id) && !m.forced_by && (
              <span class="tag warn" title="The server lists this person, but no member signed them into the room: they get no keys.">
                Not verified by the room
              </span>
            )}
            {!vouched && m.forced_by && <span class="tag">Added by an administrator</span>}
            {m.user_id !== ws.me.id && ws.e2e.unlocked && (
              <button type="button" class="button small" aria-label={`Verify ${m.username}`} onClick={() => setVerifying(m.user_id)}>
                {ws.e2e.isVerified(m.user_id) ? <Icon name="shield" title="Verified" /> : "Verify"}
              </button>
            )}
            {props.owner && room.kind !== "direct" && m.user_id !== ws.me.id && (
              <button type="button" class="icon-button" aria-label={`Remove ${m.username}`} onClick={() => void remove.run(m.user_id)}>
                <Icon name="close" />
              </button>
            )}
          </li>
        ))}
      </ul>
      {signed && signed.unlisted.length > 0 && (
        <ul class="member-list" aria-label="Removed by an administrator">
          {signed.unlisted.map((u) => (
            <li key={u}>
              <span class="avatar" aria-hidden="true">
                {initial(ws.displayName(u))}
              </span>
              <span class="member-name">{ws.displayName(u)}</span>
              <span class="tag warn" title="The server no longer lists this person, but the room's signed state still does, and they may still hold its keys: an owner removes them to rotate the key.">
                Removed by an administrator — still in the room's signed state
              </span>
            </li>
          ))}
        </ul>
      )}
      {verifying && <VerifyDialog ws={ws} userId={verifying} onClose={() => setVerifying(null)} />}
    </div>
  );
}
