// Paths of the single-page app: /setup, /login, /rooms/<id>, /admin, /account, /.

import { Emitter } from "./emitter";

export type Route =
  | { page: "setup" }
  | { page: "login" }
  | { page: "home" }
  | { page: "room"; roomId: string }
  | { page: "admin" }
  | { page: "account" };

export function parseRoute(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case "setup":
      return { page: "setup" };
    case "login":
      return { page: "login" };
    case "admin":
      return { page: "admin" };
    case "account":
      return { page: "account" };
    case "rooms":
      return parts[1] ? { page: "room", roomId: parts[1] } : { page: "home" };
    default:
      return { page: "home" };
  }
}

export function routePath(r: Route): string {
  return r.page === "room" ? `/rooms/${encodeURIComponent(r.roomId)}` : r.page === "home" ? "/" : `/${r.page}`;
}

export class Router extends Emitter {
  route: Route = parseRoute(location.pathname);

  constructor() {
    super();
    addEventListener("popstate", () => {
      this.route = parseRoute(location.pathname);
      this.changed();
    });
  }

  go(r: Route, replace = false): void {
    const path = routePath(r);
    if (replace) history.replaceState(null, "", path);
    else if (location.pathname !== path) history.pushState(null, "", path);
    this.route = r;
    this.changed();
  }
}
