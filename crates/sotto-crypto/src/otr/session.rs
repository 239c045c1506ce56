//! One side of an OTR session: the handshake states, then the ratchet, then the end.

use super::OtrError;
use super::frame::{Accept, Body, Confirm, Data, Frame, Offer};
use super::handshake::{HandshakeKeys, Role, Transcript, public};
use super::ratchet::Ratchet;
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
    AwaitingAccept {
        ephemeral: StaticSecret,
        refresh: bool,
    },
    AwaitingConfirm {
        keys: HandshakeKeys,
        ephemeral: StaticSecret,
        refresh: bool,
    },
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
        let (Frame::Offer(o) | Frame::Refresh(o)) = offer else {
            return Err(OtrError::UnexpectedFrame);
        };
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
    pub fn handle(
        &mut self,
        frame: &Frame,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Event, OtrError> {
        if frame.session() != self.id {
            return Err(OtrError::UnknownSession);
        }
        if let (Frame::Data(d), State::Established(ratchet)) = (frame, &mut self.state) {
            let padded = ratchet.decrypt(&d.header, &d.ciphertext, rng)?;
            return Body::decode_padded(&padded)
                .map(Event::Message)
                .map_err(OtrError::Body);
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
                let keys =
                    HandshakeKeys::derive(Role::Initiator, &self.own_identity, ephemeral, &t)?;
                keys.verify_accept(&a.mac)?;
                let first = StaticSecret::random_from_rng(rng);
                let ratchet_key = public(&first);
                let ratchet = Ratchet::initiator(self.id, &keys.root, first, a.ephemeral)?;
                let mac = keys.confirm_mac(&ratchet_key);
                self.state = State::Established(Box::new(ratchet));
                let reply = Some(Frame::Confirm(Confirm {
                    session: self.id,
                    ratchet_key,
                    mac,
                }));
                Ok(if refresh {
                    Event::Refreshed { reply }
                } else {
                    Event::Established { reply }
                })
            }
            (
                Frame::Confirm(c),
                State::AwaitingConfirm {
                    keys,
                    ephemeral,
                    refresh,
                },
            ) => {
                let refresh = *refresh;
                keys.verify_confirm(&c.ratchet_key, &c.mac)?;
                let ratchet =
                    Ratchet::responder(self.id, &keys.root, ephemeral.clone(), c.ratchet_key, rng)?;
                self.state = State::Established(Box::new(ratchet));
                Ok(if refresh {
                    Event::Refreshed { reply: None }
                } else {
                    Event::Established { reply: None }
                })
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
        Ok(Frame::Data(Data {
            session: self.id,
            header,
            ciphertext,
        }))
    }

    /// Encrypts a text message for the peer.
    pub fn send_text(&mut self, text: &str) -> Result<Frame, OtrError> {
        self.send(&Body::Text(text.to_owned()))
    }

    /// Encrypts a small file for the peer (the encoded body is at most
    /// [`MAX_BODY_LEN`](super::MAX_BODY_LEN) bytes).
    pub fn send_file(
        &mut self,
        name: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Frame, OtrError> {
        self.send(&Body::File {
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            bytes: bytes.to_vec(),
        })
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
    fn respond(
        &mut self,
        o: &Offer,
        refresh: bool,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Frame, OtrError> {
        self.check_offer(o)?;
        let ephemeral = StaticSecret::random_from_rng(rng);
        let own_ephemeral = public(&ephemeral);
        let t = self.transcript(Role::Responder, own_ephemeral, o.ephemeral);
        let keys = HandshakeKeys::derive(Role::Responder, &self.own_identity, &ephemeral, &t)?;
        let mac = keys.accept_mac();
        self.state = State::AwaitingConfirm {
            keys,
            ephemeral,
            refresh,
        };
        Ok(Frame::Accept(Accept {
            session: self.id,
            ephemeral: own_ephemeral,
            mac,
        }))
    }

    fn transcript(
        &self,
        role: Role,
        own_ephemeral: [u8; 32],
        peer_ephemeral: [u8; 32],
    ) -> Transcript<'_> {
        let own_identity = public(&self.own_identity);
        let (initiator, responder, ii, ri, ie, re) = match role {
            Role::Initiator => (
                &self.own_user,
                &self.peer_user,
                own_identity,
                self.peer_identity,
                own_ephemeral,
                peer_ephemeral,
            ),
            Role::Responder => (
                &self.peer_user,
                &self.own_user,
                self.peer_identity,
                own_identity,
                peer_ephemeral,
                own_ephemeral,
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::DecodeError;
    use crate::otr::MAX_SKIP_PER_STEP;
    use crate::test_rng;
    use rand_chacha::ChaCha20Rng;

    struct User {
        keys: IdentityKeys,
        id: UserId,
    }

    impl User {
        fn new(name: &str, seed: u64) -> Self {
            Self {
                keys: IdentityKeys::generate(&mut test_rng(seed)),
                id: UserId::new(name).unwrap(),
            }
        }
        fn bundle(&self) -> PublicBundle {
            self.keys.bundle(&self.id)
        }
    }

    fn room() -> RoomId {
        RoomId::new("dm.alice.bob").unwrap()
    }

    /// Alice and Bob with an established session, and a generator for the rest.
    fn established() -> (OtrSession, OtrSession, ChaCha20Rng) {
        established_with(100)
    }

    fn established_with(seed: u64) -> (OtrSession, OtrSession, ChaCha20Rng) {
        let (alice, bob) = (User::new("alice", 1), User::new("bob", 2));
        let mut rng = test_rng(seed);
        let (mut a, offer) =
            OtrSession::offer(&alice.keys, &alice.id, &bob.bundle(), &room(), &mut rng).unwrap();
        assert_eq!(a.state(), SessionState::AwaitingAccept);
        let (mut b, accept) = OtrSession::accept(
            &wire(&offer),
            &bob.keys,
            &bob.id,
            &alice.bundle(),
            &room(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(b.state(), SessionState::AwaitingConfirm);
        assert_eq!(
            b.send_text("too early").unwrap_err(),
            OtrError::NotEstablished
        );
        let Event::Established {
            reply: Some(confirm),
        } = a.handle(&wire(&accept), &mut rng).unwrap()
        else {
            panic!("initiator must confirm")
        };
        assert_eq!(
            b.handle(&wire(&confirm), &mut rng).unwrap(),
            Event::Established { reply: None }
        );
        assert_eq!(
            (a.state(), b.state()),
            (SessionState::Established, SessionState::Established)
        );
        (a, b, rng)
    }

    /// Every frame goes through its byte encoding, as it would through the server.
    fn wire(f: &Frame) -> Frame {
        Frame::decode(&f.encode()).unwrap()
    }

    fn text(s: &str) -> Event {
        Event::Message(Body::Text(s.into()))
    }

    #[test]
    fn a_whole_conversation() {
        let (mut a, mut b, mut rng) = established();
        for round in 0..5 {
            for i in 0..3 {
                let m = format!("a{round}.{i}");
                assert_eq!(
                    b.handle(&wire(&a.send_text(&m).unwrap()), &mut rng)
                        .unwrap(),
                    text(&m)
                );
            }
            let m = format!("b{round}");
            assert_eq!(
                a.handle(&wire(&b.send_text(&m).unwrap()), &mut rng)
                    .unwrap(),
                text(&m)
            );
        }
        // The responder may also speak first right after the handshake.
        let (mut a, mut b, mut rng2) = established();
        assert_eq!(
            a.handle(&b.send_text("hi").unwrap(), &mut rng2).unwrap(),
            text("hi")
        );
        let file = b"\x89PNG small picture".to_vec();
        let f = a.send_file("cat.png", "image/png", &file).unwrap();
        let Frame::Data(d) = &f else { panic!() };
        assert_eq!(
            d.ciphertext.len(),
            256 + 16,
            "small bodies pad to 256 bytes"
        );
        assert_eq!(
            b.handle(&wire(&f), &mut rng).unwrap(),
            Event::Message(Body::File {
                name: "cat.png".into(),
                media_type: "image/png".into(),
                bytes: file
            })
        );
    }

    #[test]
    fn out_of_order_dropped_replayed_and_too_old() {
        let (mut a, mut b, mut rng) = established();
        let m: Vec<_> = (0..5)
            .map(|i| a.send_text(&format!("m{i}")).unwrap())
            .collect();
        // Out of order within the window, message 1 never arrives.
        for i in [3, 0, 4, 2] {
            assert_eq!(b.handle(&m[i], &mut rng).unwrap(), text(&format!("m{i}")));
        }
        // Replays of a used key fail cleanly, both a skipped one and an in-order one.
        assert_eq!(
            b.handle(&m[0], &mut rng).unwrap_err(),
            OtrError::KeyUnavailable
        );
        assert_eq!(
            b.handle(&m[4], &mut rng).unwrap_err(),
            OtrError::KeyUnavailable
        );
        // The conversation goes on across ratchet steps; the dropped message can
        // still arrive late, once.
        assert_eq!(
            a.handle(&b.send_text("ok").unwrap(), &mut rng).unwrap(),
            text("ok")
        );
        assert_eq!(
            b.handle(&a.send_text("next").unwrap(), &mut rng).unwrap(),
            text("next")
        );
        assert_eq!(b.handle(&m[1], &mut rng).unwrap(), text("m1"));
        assert_eq!(
            b.handle(&m[1], &mut rng).unwrap_err(),
            OtrError::KeyUnavailable
        );
        // A replay from an old chain is told apart from a new ratchet key.
        assert_eq!(
            b.handle(&m[2], &mut rng).unwrap_err(),
            OtrError::KeyUnavailable
        );
    }

    #[test]
    fn the_skipped_key_window_is_bounded() {
        let (mut a, mut b, mut rng) = established();
        let first = a.send_text("first").unwrap();
        let chain: Vec<_> = (0..MAX_SKIP_PER_STEP)
            .map(|i| a.send_text(&i.to_string()).unwrap())
            .collect();
        let beyond = a.send_text("beyond").unwrap();
        // Skipping more than the per-step limit at once is refused, state unchanged.
        assert_eq!(
            b.handle(&beyond, &mut rng).unwrap_err(),
            OtrError::TooManySkipped
        );
        // Exactly the limit is fine: 1000 keys are now stored (first, 0..998).
        let last = MAX_SKIP_PER_STEP as usize - 1;
        assert_eq!(
            b.handle(&chain[last], &mut rng).unwrap(),
            text(&last.to_string())
        );
        assert_eq!(b.handle(&beyond, &mut rng).unwrap(), text("beyond"));
        // A new chain that skips one more message pushes out the oldest stored key.
        assert_eq!(
            a.handle(&b.send_text("r").unwrap(), &mut rng).unwrap(),
            text("r")
        );
        let skipped = a.send_text("skipped").unwrap();
        assert_eq!(
            b.handle(&a.send_text("after").unwrap(), &mut rng).unwrap(),
            text("after")
        );
        assert_eq!(
            b.handle(&first, &mut rng).unwrap_err(),
            OtrError::KeyUnavailable
        );
        assert_eq!(b.handle(&chain[0], &mut rng).unwrap(), text("0"));
        assert_eq!(b.handle(&skipped, &mut rng).unwrap(), text("skipped"));
    }

    #[test]
    fn tampered_data_frames_get_precise_errors() {
        let (mut a, mut b, mut rng) = established();
        let good = a.send_text("hello").unwrap().encode();
        let check = |b: &mut OtrSession, rng: &mut ChaCha20Rng, at: usize, bit: u8| {
            let mut bad = good.clone();
            bad[at] ^= bit;
            Frame::decode(&bad)
                .map_err(OtrError::from)
                .and_then(|f| b.handle(&f, rng))
        };
        // Layout: version 0, kind 1, session 2..18, ratchet key 18..50, previous
        // chain length 50..54, number 54..58, ciphertext length 58..62, ciphertext.
        assert_eq!(
            check(&mut b, &mut rng, 0, 1),
            Err(OtrError::Decode(DecodeError::UnsupportedVersion(0)))
        );
        assert_eq!(
            check(&mut b, &mut rng, 1, 0x10),
            Err(OtrError::Decode(DecodeError::InvalidField("frame kind")))
        );
        // Kind 5 -> 4 (decline) leaves trailing bytes.
        assert_eq!(
            check(&mut b, &mut rng, 1, 1),
            Err(OtrError::Decode(DecodeError::TrailingBytes))
        );
        for at in 2..18 {
            assert_eq!(
                check(&mut b, &mut rng, at, 1),
                Err(OtrError::UnknownSession),
                "byte {at}"
            );
        }
        for at in (18..54).chain([56, 57]) {
            assert_eq!(
                check(&mut b, &mut rng, at, 0x02),
                Err(OtrError::DecryptFailed),
                "byte {at}"
            );
        }
        // A message number far ahead would skip too many keys.
        for at in 54..56 {
            assert_eq!(
                check(&mut b, &mut rng, at, 0x02),
                Err(OtrError::TooManySkipped),
                "byte {at}"
            );
        }
        assert_eq!(
            check(&mut b, &mut rng, 58, 1),
            Err(OtrError::Decode(DecodeError::Truncated))
        );
        assert_eq!(
            check(&mut b, &mut rng, 60, 2),
            Err(OtrError::Decode(DecodeError::Truncated))
        );
        assert_eq!(
            check(&mut b, &mut rng, 61, 0x10),
            Err(OtrError::Decode(DecodeError::InvalidField(
                "ciphertext length"
            )))
        );
        for at in (62..good.len()).step_by(7).chain([good.len() - 1]) {
            assert_eq!(
                check(&mut b, &mut rng, at, 1),
                Err(OtrError::DecryptFailed),
                "byte {at}"
            );
        }
        // After all that, the genuine frame still opens: failures changed nothing.
        assert_eq!(
            b.handle(&Frame::decode(&good).unwrap(), &mut rng).unwrap(),
            text("hello")
        );
    }

    #[test]
    fn tampered_handshake_frames_get_precise_errors() {
        let (alice, bob) = (User::new("alice", 1), User::new("bob", 2));
        let mut rng = test_rng(5);
        let (mut a, offer) =
            OtrSession::offer(&alice.keys, &alice.id, &bob.bundle(), &room(), &mut rng).unwrap();
        let accept_with = |offer: &Frame, rng: &mut ChaCha20Rng| {
            OtrSession::accept(offer, &bob.keys, &bob.id, &alice.bundle(), &room(), rng)
                .map(|(_, f)| f)
        };
        let Frame::Offer(o) = &offer else { panic!() };
        let other = RoomId::new("dm.other").unwrap();
        let carol = UserId::new("carol").unwrap();
        assert_eq!(
            accept_with(
                &Frame::Offer(Offer {
                    room: other,
                    ..o.clone()
                }),
                &mut rng
            ),
            Err(OtrError::WrongRoom)
        );
        assert_eq!(
            accept_with(
                &Frame::Offer(Offer {
                    initiator: carol.clone(),
                    ..o.clone()
                }),
                &mut rng
            ),
            Err(OtrError::WrongParticipants)
        );
        assert_eq!(
            accept_with(
                &Frame::Offer(Offer {
                    responder: carol,
                    ..o.clone()
                }),
                &mut rng
            ),
            Err(OtrError::WrongParticipants)
        );
        assert_eq!(
            accept_with(
                &Frame::Offer(Offer {
                    ephemeral: [0; 32],
                    ..o.clone()
                }),
                &mut rng
            ),
            Err(OtrError::WeakKey)
        );
        assert_eq!(
            accept_with(&Frame::End(o.session), &mut rng),
            Err(OtrError::UnexpectedFrame)
        );

        // Every byte of the accept's ephemeral and MAC matters to the initiator, and
        // a failed accept leaves it waiting for the genuine one.
        let (mut b, accept) = OtrSession::accept(
            &offer,
            &bob.keys,
            &bob.id,
            &alice.bundle(),
            &room(),
            &mut rng,
        )
        .unwrap();
        let accept = accept.encode();
        for at in 18..accept.len() {
            let mut bad = accept.clone();
            bad[at] ^= 0x04;
            assert_eq!(
                a.handle(&Frame::decode(&bad).unwrap(), &mut rng),
                Err(OtrError::BadConfirmation),
                "byte {at}"
            );
            assert_eq!(a.state(), SessionState::AwaitingAccept);
        }
        let mut weak = Frame::decode(&accept).unwrap();
        if let Frame::Accept(x) = &mut weak {
            x.ephemeral = [0; 32];
        }
        assert_eq!(a.handle(&weak, &mut rng), Err(OtrError::WeakKey));
        let Event::Established {
            reply: Some(confirm),
        } = a
            .handle(&Frame::decode(&accept).unwrap(), &mut rng)
            .unwrap()
        else {
            panic!()
        };
        // The same for every byte of the confirmation.
        let confirm = confirm.encode();
        for at in 18..confirm.len() {
            let mut bad = confirm.clone();
            bad[at] ^= 0x40;
            assert_eq!(
                b.handle(&Frame::decode(&bad).unwrap(), &mut rng),
                Err(OtrError::BadConfirmation),
                "byte {at}"
            );
            assert_eq!(b.state(), SessionState::AwaitingConfirm);
        }
        assert_eq!(
            b.handle(&Frame::decode(&confirm).unwrap(), &mut rng),
            Ok(Event::Established { reply: None })
        );
        // A handshake frame once established is out of place.
        assert_eq!(
            b.handle(&Frame::decode(&confirm).unwrap(), &mut rng),
            Err(OtrError::UnexpectedFrame)
        );
        assert_eq!(
            a.handle(&Frame::decode(&accept).unwrap(), &mut rng),
            Err(OtrError::UnexpectedFrame)
        );
        assert_eq!(a.handle(&offer, &mut rng), Err(OtrError::UnexpectedFrame));
    }

    #[test]
    fn wrong_peer_keys_fail_the_handshake() {
        let (alice, bob, mallory) = (
            User::new("alice", 1),
            User::new("bob", 2),
            User::new("bob", 3),
        );
        let mut rng = test_rng(6);
        // Alice holds a bundle for "bob" with other keys (say, substituted by the server).
        let (mut a, offer) =
            OtrSession::offer(&alice.keys, &alice.id, &mallory.bundle(), &room(), &mut rng)
                .unwrap();
        let (_, accept) = OtrSession::accept(
            &offer,
            &bob.keys,
            &bob.id,
            &alice.bundle(),
            &room(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(a.handle(&accept, &mut rng), Err(OtrError::BadConfirmation));
        // Bob holds the wrong key for Alice: Alice refuses his accept.
        let (mut a, offer) =
            OtrSession::offer(&alice.keys, &alice.id, &bob.bundle(), &room(), &mut rng).unwrap();
        let wrong_alice = User {
            keys: IdentityKeys::generate(&mut test_rng(4)),
            id: alice.id.clone(),
        };
        let (_, accept) = OtrSession::accept(
            &offer,
            &bob.keys,
            &bob.id,
            &wrong_alice.bundle(),
            &room(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(a.handle(&accept, &mut rng), Err(OtrError::BadConfirmation));
    }

    #[test]
    fn a_man_in_the_middle_swapping_ephemerals_is_caught() {
        let (alice, bob) = (User::new("alice", 1), User::new("bob", 2));
        let mut rng = test_rng(7);
        let mitm = public(&StaticSecret::random_from_rng(&mut rng));
        // Swapping the offer's ephemeral: Bob answers, Alice refuses his MAC.
        let (mut a, offer) =
            OtrSession::offer(&alice.keys, &alice.id, &bob.bundle(), &room(), &mut rng).unwrap();
        let Frame::Offer(o) = &offer else { panic!() };
        let swapped = Frame::Offer(Offer {
            ephemeral: mitm,
            ..o.clone()
        });
        let (mut b, accept) = OtrSession::accept(
            &swapped,
            &bob.keys,
            &bob.id,
            &alice.bundle(),
            &room(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(a.handle(&accept, &mut rng), Err(OtrError::BadConfirmation));
        // Swapping the accept's ephemeral and keeping Bob's MAC: refused too.
        let (_, accept) = OtrSession::accept(
            &offer,
            &bob.keys,
            &bob.id,
            &alice.bundle(),
            &room(),
            &mut rng,
        )
        .unwrap();
        let Frame::Accept(x) = &accept else { panic!() };
        let swapped = Frame::Accept(Accept {
            ephemeral: mitm,
            ..x.clone()
        });
        assert_eq!(a.handle(&swapped, &mut rng), Err(OtrError::BadConfirmation));
        // And Bob (who answered the swapped offer) refuses Alice's genuine confirmation.
        let Ok(Event::Established {
            reply: Some(confirm),
        }) = a.handle(&accept, &mut rng)
        else {
            panic!()
        };
        assert_eq!(b.handle(&confirm, &mut rng), Err(OtrError::BadConfirmation));
    }

    #[test]
    fn decline_ends_the_offer() {
        let (alice, bob) = (User::new("alice", 1), User::new("bob", 2));
        let mut rng = test_rng(8);
        let (mut a, offer) =
            OtrSession::offer(&alice.keys, &alice.id, &bob.bundle(), &room(), &mut rng).unwrap();
        assert_eq!(
            OtrSession::decline(&Frame::End(offer.session())),
            Err(OtrError::UnexpectedFrame)
        );
        let decline = wire(&OtrSession::decline(&offer).unwrap());
        assert_eq!(a.handle(&decline, &mut rng), Ok(Event::Declined));
        assert_eq!(a.state(), SessionState::Ended);
        assert_eq!(a.send_text("x"), Err(OtrError::Ended));
        assert_eq!(a.handle(&decline, &mut rng), Err(OtrError::Ended));
        assert_eq!(
            OtrSession::offer(&alice.keys, &alice.id, &alice.bundle(), &room(), &mut rng)
                .unwrap_err(),
            OtrError::WrongParticipants
        );
    }

    #[test]
    fn frames_for_another_session_are_refused() {
        let (mut a, mut b, mut rng) = established();
        let (mut c, _d, _) = established_with(101);
        let stray = c.send_text("elsewhere").unwrap();
        assert_ne!(stray.session(), a.id());
        assert_eq!(b.handle(&stray, &mut rng), Err(OtrError::UnknownSession));
        assert_eq!(
            b.handle(&Frame::End(stray.session()), &mut rng),
            Err(OtrError::UnknownSession)
        );
        assert_eq!(b.state(), SessionState::Established);
        assert_eq!(
            b.handle(&a.send_text("still here").unwrap(), &mut rng)
                .unwrap(),
            text("still here")
        );
    }

    #[test]
    fn refresh_rekeys_and_the_old_state_cannot_read_on() {
        let (mut a, mut b, mut rng) = established();
        assert_eq!(
            b.handle(&a.send_text("before").unwrap(), &mut rng).unwrap(),
            text("before")
        );
        let old_b = b.snapshot();
        let refresh = wire(&a.refresh(&mut rng).unwrap());
        assert_eq!(a.state(), SessionState::AwaitingAccept);
        assert_eq!(a.send_text("x"), Err(OtrError::NotEstablished));
        let Event::RefreshStarted { reply: accept } = b.handle(&refresh, &mut rng).unwrap() else {
            panic!()
        };
        let Event::Refreshed {
            reply: Some(confirm),
        } = a.handle(&wire(&accept), &mut rng).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            b.handle(&wire(&confirm), &mut rng),
            Ok(Event::Refreshed { reply: None })
        );
        let m = a.send_text("after").unwrap();
        let mut stolen = old_b;
        assert_eq!(stolen.handle(&m, &mut rng), Err(OtrError::DecryptFailed));
        assert_eq!(b.handle(&m, &mut rng).unwrap(), text("after"));
        assert_eq!(
            a.handle(&b.send_text("back").unwrap(), &mut rng).unwrap(),
            text("back")
        );
        // A refresh from the wrong user or room is refused and changes nothing.
        let Frame::Refresh(o) = &refresh else {
            panic!()
        };
        let bad = Frame::Refresh(Offer {
            room: RoomId::new("dm.other").unwrap(),
            ..o.clone()
        });
        assert_eq!(b.handle(&bad, &mut rng), Err(OtrError::WrongRoom));
        assert_eq!(b.state(), SessionState::Established);
    }

    #[test]
    fn a_peer_that_lost_its_state_rejoins_through_refresh() {
        let (alice, bob) = (User::new("alice", 1), User::new("bob", 2));
        let (mut a, b, mut rng) = established();
        drop(b);
        let refresh = a.refresh(&mut rng).unwrap();
        let (mut b, accept) = OtrSession::accept(
            &refresh,
            &bob.keys,
            &bob.id,
            &alice.bundle(),
            &room(),
            &mut rng,
        )
        .unwrap();
        let Event::Refreshed {
            reply: Some(confirm),
        } = a.handle(&accept, &mut rng).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            b.handle(&confirm, &mut rng),
            Ok(Event::Established { reply: None })
        );
        assert_eq!(
            b.handle(&a.send_text("welcome back").unwrap(), &mut rng)
                .unwrap(),
            text("welcome back")
        );
    }

    #[test]
    fn simultaneous_refreshes_settle_on_one() {
        let (mut a, mut b, mut rng) = established();
        let ra = a.refresh(&mut rng).unwrap();
        let rb = b.refresh(&mut rng).unwrap();
        let ea = a.handle(&rb, &mut rng).unwrap();
        let eb = b.handle(&ra, &mut rng).unwrap();
        let (mut winner, mut loser, accept) = match (ea, eb) {
            (Event::Ignored, Event::RefreshStarted { reply }) => (a, b, reply),
            (Event::RefreshStarted { reply }, Event::Ignored) => (b, a, reply),
            other => panic!("no single winner: {other:?}"),
        };
        let Event::Refreshed {
            reply: Some(confirm),
        } = winner.handle(&accept, &mut rng).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            loser.handle(&confirm, &mut rng),
            Ok(Event::Refreshed { reply: None })
        );
        assert_eq!(
            loser
                .handle(&winner.send_text("settled").unwrap(), &mut rng)
                .unwrap(),
            text("settled")
        );
    }

    #[test]
    fn end_wipes_both_sides() {
        let (mut a, mut b, mut rng) = established();
        let m = a.send_text("in flight").unwrap();
        let end = wire(&a.end());
        assert_eq!(a.state(), SessionState::Ended);
        assert_eq!(a.send_text("after end"), Err(OtrError::Ended));
        assert_eq!(a.refresh(&mut rng), Err(OtrError::Ended));
        assert_eq!(b.handle(&end, &mut rng), Ok(Event::Ended));
        assert_eq!(b.send_file("a", "b/c", b"x"), Err(OtrError::Ended));
        assert_eq!(b.handle(&m, &mut rng), Err(OtrError::Ended));
        assert_eq!(b.handle(&end, &mut rng), Err(OtrError::Ended));
        assert!(matches!(b.state, State::Ended), "no key material is left");
    }

    #[test]
    fn used_message_keys_are_gone_from_later_state() {
        let (mut a, mut b, mut rng) = established();
        let early = a.send_text("early").unwrap();
        let late = a.send_text("late").unwrap();
        assert_eq!(b.handle(&late, &mut rng).unwrap(), text("late"));
        assert_eq!(b.handle(&early, &mut rng).unwrap(), text("early"));
        // Someone who copies Bob's whole state now still cannot open either message.
        let mut stolen = b.snapshot();
        assert_eq!(
            stolen.handle(&early, &mut rng),
            Err(OtrError::KeyUnavailable)
        );
        assert_eq!(
            stolen.handle(&late, &mut rng),
            Err(OtrError::KeyUnavailable)
        );
        // Nor a message from a chain that has since been ratcheted past.
        assert_eq!(
            a.handle(&b.send_text("r").unwrap(), &mut rng).unwrap(),
            text("r")
        );
        let m = a.send_text("new chain").unwrap();
        assert_eq!(b.handle(&m, &mut rng).unwrap(), text("new chain"));
        let mut stolen = b.snapshot();
        assert_eq!(stolen.handle(&m, &mut rng), Err(OtrError::KeyUnavailable));
        assert_eq!(
            stolen.handle(&early, &mut rng),
            Err(OtrError::KeyUnavailable)
        );
    }

    #[test]
    fn frames_out_of_place_are_refused() {
        let (alice, bob) = (User::new("alice", 1), User::new("bob", 2));
        let mut rng = test_rng(9);
        let (mut a, offer) =
            OtrSession::offer(&alice.keys, &alice.id, &bob.bundle(), &room(), &mut rng).unwrap();
        let (mut b, accept) = OtrSession::accept(
            &offer,
            &bob.keys,
            &bob.id,
            &alice.bundle(),
            &room(),
            &mut rng,
        )
        .unwrap();
        // Data and confirmations before their time.
        let (mut x, mut y, _) = established_with(102);
        let Frame::Data(d) = x.send_text("early").unwrap() else {
            panic!()
        };
        let early = Frame::Data(Data {
            session: b.id(),
            ..d
        });
        assert_eq!(b.handle(&early, &mut rng), Err(OtrError::UnexpectedFrame));
        assert_eq!(
            b.handle(&Frame::Decline(b.id()), &mut rng),
            Err(OtrError::UnexpectedFrame)
        );
        assert_eq!(a.handle(&early, &mut rng), Err(OtrError::UnexpectedFrame));
        let Frame::Accept(acc) = &accept else {
            panic!()
        };
        let confirm = Frame::Confirm(Confirm {
            session: a.id(),
            ratchet_key: acc.ephemeral,
            mac: acc.mac,
        });
        assert_eq!(a.handle(&confirm, &mut rng), Err(OtrError::UnexpectedFrame));
        assert_eq!(b.state(), SessionState::AwaitingConfirm);
        assert_eq!(a.state(), SessionState::AwaitingAccept);
        // A decline once established is out of place, too.
        assert_eq!(
            y.handle(&Frame::Decline(y.id()), &mut rng),
            Err(OtrError::UnexpectedFrame)
        );
        assert_eq!(y.refresh(&mut rng).map(|_| ()), Ok(()));
        assert_eq!(y.refresh(&mut rng), Err(OtrError::NotEstablished));
    }

    #[test]
    fn debug_shows_no_secret() {
        let (a, _, _) = established();
        let shown = format!("{a:?}");
        assert!(shown.contains("Established") && !shown.contains("root"));
    }
}
