// REST over fetch: JSON in and out, the bearer token in a header (never in a URL),
// errors as ApiError with the server's stable code.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Percent-encodes one path segment (ids are server-chosen, but never trusted as paths). */
export const seg = encodeURIComponent;

export class Http {
  constructor(private token: string | null = null) {}

  setToken(token: string | null): void {
    this.token = token;
  }

  hasToken(): boolean {
    return this.token !== null;
  }

  /** The token for the realtime socket's subprotocol; nothing else reads it. */
  socketToken(): string | null {
    return this.token;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await this.raw(method, path, body === undefined ? undefined : JSON.stringify(body), headers);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  /** Sends a request and turns a non-2xx answer into ApiError. */
  async raw(method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
    } catch {
      throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
    }
    if (!res.ok) {
      let code = "internal";
      let message = `The server answered ${res.status}.`;
      try {
        const e = (await res.json()) as { error?: { code?: string; message?: string } };
        code = e.error?.code ?? code;
        message = e.error?.message ?? message;
      } catch {
        /* not JSON: keep the generic message */
      }
      throw new ApiError(res.status, code, message);
    }
    return res;
  }
}
