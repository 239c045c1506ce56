// Wire types of the REST API and the realtime socket, as crates/sotto-api defines them
// (the server describes them at /api/v1/openapi.json).

export interface User {
  id: string;
  username: string;
  display_name: string;
  admin: boolean;
  deactivated: boolean;
  created_at: number;
}

export interface UserSummary {
  id: string;
  username: string;
  display_name: string;
}

export interface Session {
  id: string;
  kind: "login" | "personal_access";
  name: string | null;
  created_at: number;
  last_used_at: number;
  expires_at: number | null;
  current: boolean;
}

export interface LoginResponse {
  token: string;
  session: Session;
  user: User;
}

export type RoomKind = "channel" | "direct" | "team" | "discussion";

export interface Room {
  id: string;
  kind: RoomKind;
  private: boolean;
  name: string | null;
  topic: string;
  parent_id: string | null;
  encrypted: boolean;
  created_by: string;
  created_at: number;
  seq: number;
  member: boolean;
  last_read_seq?: number | null;
  unread?: number | null;
}

export interface CreateRoomRequest {
  kind: RoomKind;
  name?: string;
  topic?: string;
  private?: boolean;
  parent_id?: string;
  members: string[];
  encrypted?: boolean;
}

export interface Member {
  user_id: string;
  username: string;
  owner: boolean;
  joined_at: number;
  /** The administrator who added them without the room's say. */
  forced_by?: string;
}

/** A room as the admin's list of every room shows it. */
export interface AdminRoom {
  id: string;
  kind: RoomKind;
  private: boolean;
  encrypted: boolean;
  name?: string | null;
  member_count: number;
}

export interface Message {
  id: string;
  room_id: string;
  seq: number;
  version_seq: number;
  sender_id: string;
  text: string | null;
  ciphertext: string | null;
  mentions: string[];
  created_at: number;
  edited_at: number | null;
  deleted: boolean;
}

export interface MessagePage {
  messages: Message[];
  has_more: boolean;
}

export interface FileInfo {
  id: string;
  room_id: string;
  uploader_id: string;
  name: string | null;
  content_type: string;
  size: number;
  created_at: number;
}

export interface Settings {
  "e2e.enabled": boolean;
  "e2e.default_direct": boolean;
  "e2e.default_private": boolean;
  "e2e.encrypt_files": boolean;
  "otr.enabled": boolean;
  "files.max_size_bytes": number;
  "rooms.max_group_dm_members": number;
}

export interface SearchPage {
  messages: Message[];
  next_cursor: string | null;
}

export interface KeyBundle {
  user_id: string;
  bundle: string;
  published_at: number;
}

export interface MyKeys {
  published: boolean;
  bundle: KeyBundle | null;
}

export interface RoomKeyItem {
  epoch_id: string;
  distributor_id: string;
  box: string;
}

export interface RoomKeyState {
  current_epoch: string | null;
  rotation_due: boolean;
  waiting: boolean;
  lacking: string[];
  keys: RoomKeyItem[];
}

export type EventKind =
  | { type: "room_created"; room: Room; member_ids: string[] }
  | { type: "room_updated"; room: Room }
  | { type: "member_added"; member: Member }
  | { type: "member_removed"; user_id: string; forced_by?: string }
  | { type: "owner_changed"; user_id: string; owner: boolean }
  | { type: "message_created" | "message_edited" | "message_deleted"; message: Message }
  | { type: "statement_added"; chain_seq: number; statement: string }
  | { type: "encryption_changed"; encrypted: boolean; by: string };

export type RoomEvent = { room_id: string; seq: number } & EventKind;

export type Notice =
  | { type: "presence"; user_id: string; online: boolean }
  | { type: "resumed" }
  | { type: "keys_changed"; user_id: string }
  | { type: "room_key_request"; room_id: string; epoch_id: string; user_ids: string[] }
  | { type: "room_key"; room_id: string; epoch_id: string; distributor_id: string; box: string }
  | { type: "otr"; room_id: string; sender_id: string; frame: string }
  | { type: "otr_error"; id: string; code: string; message: string; retry_after_secs?: number };

export type ServerFrame = RoomEvent | Notice;
