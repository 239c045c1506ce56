// The client's wire types (src/api/types.ts) against the server's own OpenAPI document:
// each mirrored schema has exactly the fields the type declares. The field lists are
// tied to the TypeScript types at compile time (a missing or extra key fails tsc), and
// to the schemas here.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { FileInfo, KeyBundle, Member, Message, MessagePage, MyKeys, Room, RoomKeyItem, RoomKeyState, SearchPage, Session, Settings, User, UserSummary } from "../../src/api/types";
import { startServer } from "./harness";

type Fields<T> = Record<keyof T, true>;
const f = <T>(fields: Fields<T>) => Object.keys(fields).sort();

const MIRRORED: Record<string, string[]> = {
  User: f<User>({ id: true, username: true, display_name: true, admin: true, deactivated: true, created_at: true }),
  UserSummary: f<UserSummary>({ id: true, username: true, display_name: true }),
  Session: f<Session>({ id: true, kind: true, name: true, created_at: true, last_used_at: true, expires_at: true, current: true }),
  Room: f<Room>({ id: true, kind: true, private: true, name: true, topic: true, parent_id: true, encrypted: true, created_by: true, created_at: true, seq: true, member: true, last_read_seq: true, unread: true }),
  Member: f<Member>({ user_id: true, username: true, owner: true, joined_at: true, forced_by: true }),
  Message: f<Message>({ id: true, room_id: true, seq: true, version_seq: true, sender_id: true, text: true, ciphertext: true, mentions: true, created_at: true, edited_at: true, deleted: true }),
  MessagePage: f<MessagePage>({ messages: true, has_more: true }),
  FileInfo: f<FileInfo>({ id: true, room_id: true, uploader_id: true, name: true, content_type: true, size: true, created_at: true }),
  Settings: f<Settings>({ "e2e.enabled": true, "e2e.default_direct": true, "e2e.default_private": true, "e2e.encrypt_files": true, "otr.enabled": true, "files.max_size_bytes": true, "rooms.max_group_dm_members": true }),
  SearchPage: f<SearchPage>({ messages: true, next_cursor: true }),
  KeyBundle: f<KeyBundle>({ user_id: true, bundle: true, published_at: true }),
  RoomKeyItem: f<RoomKeyItem>({ epoch_id: true, distributor_id: true, box: true }),
  RoomKeyState: f<RoomKeyState>({ current_epoch: true, rotation_due: true, waiting: true, lacking: true, keys: true }),
};
const MY_KEYS = f<MyKeys>({ published: true, bundle: true });

test("the client's wire types have exactly the fields of the server's schemas", async () => {
  const server = await startServer();
  try {
    const res = await fetch(`${server.url}/api/v1/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as { components: { schemas: Record<string, { properties?: Record<string, unknown> }> } };
    const schemas = doc.components.schemas;
    for (const [name, fields] of Object.entries(MIRRORED)) {
      const schema = schemas[name];
      assert.ok(schema?.properties, `the server documents a schema ${name}`);
      assert.deepEqual(fields, Object.keys(schema.properties).sort(), `${name}: the client's fields are the server's`);
    }
    // GET /api/v1/me/keys answers one of the schemas with exactly these two fields.
    assert.ok(
      Object.values(schemas).some((s) => s.properties && JSON.stringify(Object.keys(s.properties).sort()) === JSON.stringify(MY_KEYS)),
      "a schema with the fields of MyKeys",
    );
  } finally {
    await server.stop();
  }
});
