//! One side of an OTR session: the handshake states, then the ratchet, then the end.

use super::frame::{Accept, Body, Confirm, Data, Frame, Offer};
use super::handshake::{HandshakeKeys, Role, Transcript, public};
use super::ratchet::Ratchet;
use super::OtrError;
use crate::identity::{IdentityKeys, PublicBundle};
use crate::ids::{OtrSessionId, RoomId, UserId};
use std::fmt;
use x25519_dalek::StaticSecret;

/// Where a session stands, for the caller's interface and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// This side sent an offer or refresh and waits for the peer's accept.
    AwaitingAccept,
    /// This side accepted and waits for the initiator's confirmation.
    AwaitingConfirm,
    /// Messages flow both ways.
    Established,
    /// The session ended or was declined; its keys are wiped.
    Ended,
}

/// What handling a frame produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first handshake completed; send `reply` (the initiator's confirmation) if any.
    Established {
        /// A frame to send to the peer.
        reply: Option<Frame>,
    },
    /// The peer asked for fresh keys: the old keys are wiped; send `reply` (an accept).
    RefreshStarted {
        /// The accept to send to the peer.
        reply: Frame,
    },
    /// A refresh completed with fresh keys; send `reply` if any.
    Refreshed {
        /// A frame to send to the peer.
        reply: Option<Frame>,
    },
    /// A message arrived.
    Message(Body),
    /// The peer declined the offer; the session has ended.
    Declined,
    /// The peer ended the session; its keys are wiped.
    Ended,
    /// Nothing to do: the peer's refresh lost a simultaneous-refresh tie-break and
    /// the peer will answer this side's refresh instead.
    Ignored,
}

enum State {
    AwaitingAccept { ephemeral: StaticSecret, refresh: bool },
    AwaitingConfirm { keys: HandshakeKeys, ephemeral: StaticSecret, refresh: bool },
    Established(Box<Ratchet>),
    Ended,
}

/// The state of one side of an OTR session. Every secret it holds zeroizes on drop;
/// it is deliberately not `Clone`, since two copies would reuse message keys.
pub struct OtrSession {
    id: OtrSessionId,
    room: RoomId,
    own_user: UserId,
    own_identity: StaticSecret,
    peer_user: UserId,
    peer_identity: [u8; 32],
    state: State,
}

impl fmt::Debug for OtrSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtrSession")
            .field("id", &self.id)
            .field("peer", &self.peer_user)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl OtrSession {
    /// Starts a session with `peer` (whose bundle the caller verified and pinned) in
    /// the direct-message `room`: a fresh session id and ephemeral key, and the offer
    /// to send.
    pub fn offer(
        own: &IdentityKeys,
        own_user: &UserId,
        peer: &PublicBundle,
        room: &RoomId,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<(Self, Frame), OtrError> {
        if own_user == peer.user() {
            return Err(OtrError::WrongParticipants);
        }
        let id = OtrSessionId::random(rng);
        let mut session = Self {
            id,
            room: room.clone(),
            own_user: own_user.clone(),
            own_identity: own.agreement_secret().clone(),
            peer_user: peer.user().clone(),
            peer_identity: *peer.agreement(),
            state: State::Ended,
        };
        let frame = Frame::Offer(session.start(rng, false));
        Ok((session, frame))
    }

    /// Answers an offer from `peer` in `room`. A refresh frame for a session this side
    /// no longer knows (it lost its state) is accepted the same way. Returns the new
    /// session and the accept to send.
    pub fn accept(
        offer: &Frame,
        own: &IdentityKeys,
        own_user: &UserId,
        peer: &PublicBundle,
        room: &RoomId,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<(Self, Frame), OtrError> {
        let (Frame::Offer(o) | Frame::Refresh(o)) = offer else { return Err(OtrError::UnexpectedFrame) };
        let mut session = Self {
            id: o.session,
            room: room.clone(),
            own_user: own_user.clone(),
            own_identity: own.agreement_secret().clone(),
            peer_user: peer.user().clone(),
            peer_identity: *peer.agreement(),
            state: State::Ended,
        };
        let reply = session.respond(o, false, rng)?;
        Ok((session, reply))
    }

    /// The decline frame answering an offer.
    pub fn decline(offer: &Frame) -> Result<Frame, OtrError> {
        match offer {
            Frame::Offer(o) | Frame::Refresh(o) => Ok(Frame::Decline(o.session)),
            _ => Err(OtrError::UnexpectedFrame),
        }
    }

    /// The session's id.
    pub fn id(&self) -> OtrSessionId {
        self.id
    }

    /// The peer's user id.
    pub fn peer(&self) -> &UserId {
        &self.peer_user
    }

    /// The direct-message room the session belongs to.
    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        match self.state {
            State::AwaitingAccept { .. } => SessionState::AwaitingAccept,
            State::AwaitingConfirm { .. } => SessionState::AwaitingConfirm,
            State::Established(_) => SessionState::Established,
            State::Ended => SessionState::Ended,
        }
    }

    /// Handles a frame from the peer. A frame that fails any check leaves the session
    /// exactly as it was.
    pub fn handle(&mut self, frame: &Frame, rng: &mut impl rand_core::CryptoRng) -> Result<Event, OtrError> {
        if frame.session() != self.id {
            return Err(OtrError::UnknownSession);
        }
        if let (Frame::Data(d), State::Established(ratchet)) = (frame, &mut self.state) {
            let padded = ratchet.decrypt(&d.header, &d.ciphertext, rng)?;
            return Body::decode_padded(&padded).map(Event::Message).map_err(OtrError::Body);
        }
        match (frame, &self.state) {
            (_, State::Ended) => Err(OtrError::Ended),
            (Frame::End(_), _) => {
                self.state = State::Ended;
                Ok(Event::Ended)
            }
            (Frame::Accept(a), State::AwaitingAccept { ephemeral, refresh }) => {
                let refresh = *refresh;
                let t = self.transcript(Role::Initiator, public(ephemeral), a.ephemeral);
                let keys = HandshakeKeys::derive(Role::Initiator, &self.own_identity, ephemeral, &t)?;
                keys.verify_accept(&a.mac)?;
                let first = StaticSecret::random_from_rng(rng);
                let ratchet_key = public(&first);
                let ratchet = Ratchet::initiator(self.id, &keys.root, first, a.ephemeral)?;
                let mac = keys.confirm_mac(&ratchet_key);
                self.state = State::Established(Box::new(ratchet));
                let reply = Some(Frame::Confirm(Confirm { session: self.id, ratchet_key, mac }));
                Ok(if refresh { Event::Refreshed { reply } } else { Event::Established { reply } })
            }
            (Frame::Confirm(c), State::AwaitingConfirm { keys, ephemeral, refresh }) => {
                let refresh = *refresh;
                keys.verify_confirm(&c.ratchet_key, &c.mac)?;
                let ratchet = Ratchet::responder(self.id, &keys.root, ephemeral.clone(), c.ratchet_key, rng)?;
                self.state = State::Established(Box::new(ratchet));
                Ok(if refresh { Event::Refreshed { reply: None } } else { Event::Established { reply: None } })
            }
            (Frame::Decline(_), State::AwaitingAccept { .. }) => {
                self.state = State::Ended;
                Ok(Event::Declined)
            }
            (Frame::Refresh(o), state) => {
                if let State::AwaitingAccept { ephemeral, .. } = state {
                    // Both sides asked at once: the refresh with the smaller ephemeral
                    // key goes ahead, the other side answers it.
                    if public(ephemeral) < o.ephemeral {
                        self.check_offer(o)?;
                        return Ok(Event::Ignored);
                    }
                }
                let reply = self.respond(o, true, rng)?;
                Ok(Event::RefreshStarted { reply })
            }
            _ => Err(OtrError::UnexpectedFrame),
        }
    }

    /// Encrypts a message body for the peer.
    pub fn send(&mut self, body: &Body) -> Result<Frame, OtrError> {
        let ratchet = match &mut self.state {
            State::Established(r) => r,
            State::Ended => return Err(OtrError::Ended),
            _ => return Err(OtrError::NotEstablished),
        };
        let padded = body.encode_padded()?;
        let (header, ciphertext) = ratchet.encrypt(&padded)?;
        Ok(Frame::Data(Data { session: self.id, header, ciphertext }))
    }

    /// Encrypts a text message for the peer.
    pub fn send_text(&mut self, text: &str) -> Result<Frame, OtrError> {
        self.send(&Body::Text(text.to_owned()))
    }

    /// Encrypts a small file for the peer (the encoded body is at most
    /// [`MAX_BODY_LEN`](super::MAX_BODY_LEN) bytes).
    pub fn send_file(&mut self, name: &str, media_type: &str, bytes: &[u8]) -> Result<Frame, OtrError> {
        self.send(&Body::File { name: name.to_owned(), media_type: media_type.to_owned(), bytes: bytes.to_vec() })
    }

    /// Starts a new handshake for this session. The current keys are wiped at once,
    /// so nothing is sent until the peer accepts. Returns the refresh frame to send.
    pub fn refresh(&mut self, rng: &mut impl rand_core::CryptoRng) -> Result<Frame, OtrError> {
        match self.state {
            State::Established(_) => Ok(Frame::Refresh(self.start(rng, true))),
            State::Ended => Err(OtrError::Ended),
            _ => Err(OtrError::NotEstablished),
        }
    }

    /// Ends the session: wipes every key and returns the end frame for the peer.
    pub fn end(&mut self) -> Frame {
        self.state = State::Ended;
        Frame::End(self.id)
    }

    /// A fresh ephemeral key and the offer carrying it; this side is the initiator.
    fn start(&mut self, rng: &mut impl rand_core::CryptoRng, refresh: bool) -> Offer {
        let ephemeral = StaticSecret::random_from_rng(rng);
        let offer = Offer {
            session: self.id,
            room: self.room.clone(),
            initiator: self.own_user.clone(),
            responder: self.peer_user.clone(),
            ephemeral: public(&ephemeral),
        };
        self.state = State::AwaitingAccept { ephemeral, refresh };
        offer
    }

    /// Checks that an offer is from the peer to this side in this room.
    fn check_offer(&self, o: &Offer) -> Result<(), OtrError> {
        if o.initiator != self.peer_user || o.responder != self.own_user {
            return Err(OtrError::WrongParticipants);
        }
        if o.room != self.room {
            return Err(OtrError::WrongRoom);
        }
        Ok(())
    }

    /// Answers an offer or refresh as responder; the state changes only on success.
    fn respond(&mut self, o: &Offer, refresh: bool, rng: &mut impl rand_core::CryptoRng) -> Result<Frame, OtrError> {
        self.check_offer(o)?;
        let ephemeral = StaticSecret::random_from_rng(rng);
        let own_ephemeral = public(&ephemeral);
        let t = self.transcript(Role::Responder, own_ephemeral, o.ephemeral);
        let keys = HandshakeKeys::derive(Role::Responder, &self.own_identity, &ephemeral, &t)?;
        let mac = keys.accept_mac();
        self.state = State::AwaitingConfirm { keys, ephemeral, refresh };
        Ok(Frame::Accept(Accept { session: self.id, ephemeral: own_ephemeral, mac }))
    }

    fn transcript(&self, role: Role, own_ephemeral: [u8; 32], peer_ephemeral: [u8; 32]) -> Transcript<'_> {
        let own_identity = public(&self.own_identity);
        let (initiator, responder, ii, ri, ie, re) = match role {
            Role::Initiator => {
                (&self.own_user, &self.peer_user, own_identity, self.peer_identity, own_ephemeral, peer_ephemeral)
            }
            Role::Responder => {
                (&self.peer_user, &self.own_user, self.peer_identity, own_identity, peer_ephemeral, own_ephemeral)
            }
        };
        Transcript {
            session: self.id,
            room: &self.room,
            initiator,
            responder,
            initiator_identity: ii,
            responder_identity: ri,
            initiator_ephemeral: ie,
            responder_ephemeral: re,
        }
    }

    /// A copy of an established session's state, as an attacker who stole it later
    /// would hold it.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Self {
        let state = match &self.state {
            State::Established(r) => State::Established(r.clone()),
            State::Ended => State::Ended,
            _ => panic!("snapshot of a session mid-handshake"),
        };
        Self {
            id: self.id,
            room: self.room.clone(),
            own_user: self.own_user.clone(),
            own_identity: self.own_identity.clone(),
            peer_user: self.peer_user.clone(),
            peer_identity: self.peer_identity,
            state,
        }
    }
}
