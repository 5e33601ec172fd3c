// boxoffice live seat map: one ES module, no framework, no build step.
// It uses the API exactly as a front-end would: GraphQL over HTTP (POST /graphql) and over
// WebSocket (graphql-transport-ws), plus the sandbox payer's REST endpoint. Everything that
// comes from the API is rendered with textContent and setAttribute, never as HTML.

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";

/** An element with attributes and children; strings become text nodes (never parsed). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

// ---------------------------------------------------------------- GraphQL over HTTP

class ApiError extends Error {
  constructor(errors) {
    super(errors.map((error) => error.message).join("; ") || "Request failed");
    this.errors = errors;
    this.extensions = errors[0]?.extensions ?? {};
    this.code = this.extensions.code ?? "ERROR";
  }
}

const http = {
  token: null,
  skewMs: 0, // the server's clock minus ours, from the Date header: countdowns use the server's

  async post(query, variables = {}, operationName = undefined) {
    const headers = { "content-type": "application/json" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables, operationName }),
    });
    const date = Date.parse(response.headers.get("date") ?? "");
    if (!Number.isNaN(date)) {
      const skew = date + 500 - Date.now(); // the header has whole seconds
      this.skewMs = Math.abs(skew) > 1500 ? skew : 0;
    }
    try {
      return await response.json();
    } catch {
      return { errors: [{ message: `HTTP ${response.status}`, extensions: { code: `HTTP_${response.status}` } }] };
    }
  },

  async request(query, variables = {}) {
    const body = await this.post(query, variables);
    if (body.errors?.length) throw new ApiError(body.errors);
    return body.data;
  },
};

const serverNow = () => Date.now() + http.skewMs;

// ---------------------------------------------------------------- graphql-transport-ws

/**
 * A minimal graphql-transport-ws client: one socket shared by every subscription. The token
 * goes in the connection_init payload. After a drop it reconnects with backoff and subscribes
 * every live operation again; the server then starts each stream over (seatAvailability with
 * a fresh snapshot), so nothing missed while offline is lost.
 */
class GraphQLSocket {
  constructor(url, connectionPayload, onState) {
    this.url = url;
    this.connectionPayload = connectionPayload;
    this.onState = onState;
    this.ops = new Map();
    this.lastId = 0;
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.retryTimer = null;
  }

  /** Start `query`; `sink` gets next(data), error(errors), complete(). Returns a stopper. */
  subscribe(query, variables, sink) {
    const id = String(++this.lastId);
    this.ops.set(id, { query, variables, sink });
    if (this.ready) this.send({ id, type: "subscribe", payload: { query, variables } });
    else this.open();
    return () => {
      if (this.ops.delete(id) && this.ready) this.send({ id, type: "complete" });
    };
  }

  open() {
    if (this.ws || this.retryTimer) return;
    const ws = new WebSocket(this.url, "graphql-transport-ws");
    this.ws = ws;
    this.onState("connecting");
    ws.onopen = () => this.send({ type: "connection_init", payload: this.connectionPayload() });
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => this.closed(ws, event);
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  receive(message) {
    const op = this.ops.get(message.id);
    switch (message.type) {
      case "connection_ack":
        this.ready = true;
        this.attempt = 0;
        this.onState("live");
        for (const [id, { query, variables }] of this.ops) this.send({ id, type: "subscribe", payload: { query, variables } });
        this.heartbeat = setInterval(() => this.ping(), 15000);
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "pong":
        this.awaitingPong = false;
        break;
      case "next":
        if (message.payload.errors?.length) op?.sink.error(message.payload.errors);
        else op?.sink.next(message.payload.data);
        break;
      case "error":
        this.ops.delete(message.id);
        op?.sink.error(message.payload);
        break;
      case "complete":
        this.ops.delete(message.id);
        op?.sink.complete?.();
        break;
    }
  }

  ping() {
    if (this.awaitingPong) {
      this.ws?.close(4499, "no pong"); // a dead connection: start over
      return;
    }
    this.awaitingPong = true;
    this.send({ type: "ping" });
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    clearInterval(this.heartbeat);
    this.ws = null;
    this.ready = false;
    this.awaitingPong = false;
    if (event.code === 4403) { // the server refused the connection_init token
      this.onState("refused");
      const ops = [...this.ops.values()];
      this.ops.clear();
      for (const op of ops) op.sink.error([{ message: "The server refused the connection.", extensions: { code: "UNAUTHENTICATED" } }]);
      return;
    }
    if (!this.ops.size) {
      this.onState("idle");
      return;
    }
    const delay = Math.min(10000, 250 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    this.onState("reconnecting");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, delay);
  }

  /** Reconnect now (e.g. with a new token): every subscription starts over. */
  restart() {
    if (this.ws) this.ws.close(4000, "restart");
    else if (this.ops.size) this.open();
  }

  dispose() {
    this.ops.clear();
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
  }
}

// ---------------------------------------------------------------- operations

const MONEY = "{ amount currency }";
const QUEUE_TICKET = "{ eventId status position ahead estimatedWaitSeconds queueToken expiresAt }";
const OPS = {
  login: `mutation DemoLogin($input: LoginInput!) {
    login(input: $input) { accessToken refreshToken expiresIn user { id nickname email } } }`,
  refresh: `mutation DemoRefresh($token: String!) {
    refreshToken(refreshToken: $token) { accessToken refreshToken expiresIn } }`,
  logout: "mutation DemoLogout($token: String!) { logout(refreshToken: $token) }",
  events: `query DemoEvents {
    events(filter: { status: ON_SALE }, first: 50) {
      nodes { id title city venue { name } sessions { id startsAt status queueEnabled seatMapId } } } }`,
  session: `query DemoSession($id: ID!) {
    session(id: $id) {
      id eventId startsAt status queueEnabled purchaseLimit
      event { id title venue { name city } }
      tiers { id name seated limitPerOrder available price ${MONEY} }
      seatMap { id name seatCount compact } } }`,
  seatFeed: `subscription DemoSeats($sessionId: ID!) {
    seatAvailability(sessionId: $sessionId) {
      version previousVersion snapshot tiers { tierId available } compact } }`,
  availability: `query DemoAvailability($sessionId: ID!) {
    sessionAvailability(sessionId: $sessionId) { version tiers { tierId available } compact } }`,
  joinQueue: `mutation DemoJoinQueue($eventId: ID!, $deviceId: String) {
    joinQueue(eventId: $eventId, deviceId: $deviceId) ${QUEUE_TICKET} }`,
  queueStatus: `query DemoQueueStatus($eventId: ID!) { queueStatus(eventId: $eventId) ${QUEUE_TICKET} }`,
  queueFeed: `subscription DemoQueue($eventId: ID!) { queuePosition(eventId: $eventId) ${QUEUE_TICKET} }`,
  hold: `mutation DemoHold($input: CreateHoldInput!) {
    createHold(input: $input) {
      token expiresAt seats { id label } items { tierName quantity subtotal ${MONEY} } total ${MONEY} } }`,
  release: "mutation DemoRelease($token: String!) { releaseHold(token: $token) }",
  order: `mutation DemoOrder($input: CreateOrderInput!) {
    createOrder(input: $input) { id orderNo status expiresAt total ${MONEY} } }`,
  pay: `mutation DemoPay($orderId: ID!) {
    startPayment(orderId: $orderId, channel: SANDBOX) { paymentNo amount ${MONEY} payUrl } }`,
  orderFeed: `subscription DemoOrderUpdates($orderId: ID!) {
    orderUpdates(orderId: $orderId) { id orderNo status expiresAt } }`,
  tickets: `query DemoTickets($orderId: ID!) {
    order(id: $orderId) { id status tickets { id ticketSn status qrSvg seat { label } } } }`,
};

// Parts of the API being built on other branches. A probe document is validated whole but
// only its `Noop` operation runs, so probing has no side effects: a validation error means
// the field is not in this server's schema.
const PROBES = {
  tickets: 'query ProbeTickets { order(id: "") { tickets { ticketSn qrSvg } } }',
  queue: `mutation ProbeJoin { joinQueue(eventId: "") ${QUEUE_TICKET} }
    query ProbeStatus { queueStatus(eventId: "") { status } }
    subscription ProbeFeed { queuePosition(eventId: "") { status } }`,
};

async function detectFeatures() {
  const entries = await Promise.all(
    Object.entries(PROBES).map(async ([name, probe]) => {
      const body = await http.post(`${probe}\nquery Noop { __typename }`, {}, "Noop");
      return [name, !body.errors?.length];
    }),
  );
  return Object.fromEntries(entries);
}

// ---------------------------------------------------------------- formatting

const STATUSES = ["AVAILABLE", "HELD", "SOLD", "BLOCKED"];
const AVAILABLE = 0;

function money(value) {
  if (!value) return "";
  return value.currency === "CNY" ? `¥${value.amount}` : `${value.amount} ${value.currency}`;
}

function clock(ms) {
  const seconds = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function when(iso) {
  // the API gives instants (UTC offsets) but no venue time zone: show the viewer's, named
  return new Date(iso).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
}

function waitText(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `about ${seconds} s`;
  return `about ${Math.ceil(seconds / 60)} min`;
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function deviceId() {
  let id = localStorage.getItem("boxoffice-demo-device");
  if (!id) {
    id = `demo-${randomKey()}`;
    localStorage.setItem("boxoffice-demo-device", id);
  }
  return id;
}

function problem(error) {
  if (!(error instanceof ApiError)) return error?.message ?? String(error);
  const messages = {
    SEAT_UNAVAILABLE: "Someone else got there first.",
    SOLD_OUT: "Sold out.",
    HOLD_EXPIRED: "Your hold expired: the seats went back on sale.",
    HOLD_NOT_FOUND: "Your hold is gone (expired or released).",
    RATE_LIMITED: `Too many requests: try again in ${error.extensions.retryAfter ?? "a few"} seconds.`,
    UNAUTHENTICATED: "Your sign-in ended: sign in again.",
    QUEUE_TOKEN_REQUIRED: "This session sells through the waiting room.",
  };
  return messages[error.code] ?? `${error.message} (${error.code})`;
}

// ---------------------------------------------------------------- the seat map

/** The seats drawn once from `SeatMap.compact`; statuses change per seat, in place. */
class SeatBoard {
  constructor(svg, compact, tiers, handlers) {
    this.svg = svg;
    this.compact = compact;
    this.ids = compact.ids;
    this.index = new Map(this.ids.map((id, k) => [id, k]));
    this.status = new Uint8Array(this.ids.length).fill(3);
    this.nodes = [];
    this.dirty = new Set();
    this.marks = new Map(); // seat id -> "selected" | "mine"
    const order = new Map(tiers.map((tier, i) => [tier.id, i]));
    this.tierOf = (k) => {
      const t = compact.tier?.[k] ?? -1;
      return t < 0 ? null : compact.tierIds[t];
    };
    this.tierClass = (k) => {
      const id = this.tierOf(k);
      return id === null ? "" : `tier-${(order.get(id) ?? 0) % 6}`;
    };
    this.draw(handlers);
  }

  draw({ pick, hover }) {
    const { x, y, ids, section } = this.compact;
    this.svg.replaceChildren();
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    let pitch = Infinity;
    for (let k = 0; k < ids.length; k++) {
      minX = Math.min(minX, x[k]); maxX = Math.max(maxX, x[k]);
      minY = Math.min(minY, y[k]); maxY = Math.max(maxY, y[k]);
      if (k > 0 && y[k] === y[k - 1] && x[k] !== x[k - 1]) pitch = Math.min(pitch, Math.abs(x[k] - x[k - 1]));
    }
    if (!Number.isFinite(pitch)) pitch = 1;
    if (!ids.length) minX = minY = maxX = maxY = 0;
    // labels stay legible on wide maps: at least 1/90 of the map's width
    const font = Math.max(0.75 * pitch, (maxX - minX) / 90);
    const stageHeight = 1.6 * font;
    const labelsAt = minY - 0.7 * pitch; // the baseline of section names
    const stageAt = labelsAt - font - 0.5 * pitch - stageHeight;
    const pad = pitch;
    const width = maxX - minX + 2 * pad;
    this.svg.setAttribute("viewBox", `${minX - pad} ${stageAt - 0.3 * pitch} ${width} ${maxY - stageAt + 0.3 * pitch + pad}`);
    this.svg.style.maxWidth = `${Math.max(320, (width / pitch) * 30)}px`; // small maps stay small
    const stage = svgEl("g", { class: "stage" });
    stage.append(svgEl("rect", { x: minX, y: stageAt, width: Math.max(maxX - minX, pitch), height: stageHeight, rx: 0.3 * font }));
    const stageLabel = svgEl("text", { x: (minX + maxX) / 2, y: stageAt + 1.15 * font, "font-size": font });
    stageLabel.textContent = "STAGE";
    stage.append(stageLabel);
    this.svg.append(stage);
    // section names above each section's seats
    const spans = new Map();
    for (let k = 0; k < ids.length; k++) {
      const span = spans.get(section[k]) ?? { minX: Infinity, maxX: -Infinity, minY: Infinity };
      span.minX = Math.min(span.minX, x[k]); span.maxX = Math.max(span.maxX, x[k]); span.minY = Math.min(span.minY, y[k]);
      spans.set(section[k], span);
    }
    const labels = svgEl("g", { class: "sections" });
    for (const [s, span] of spans) {
      const text = svgEl("text", { x: (span.minX + span.maxX) / 2, y: span.minY - 0.7 * pitch, "font-size": font });
      text.textContent = this.compact.sections[s];
      labels.append(text);
    }
    this.svg.append(labels);
    const seats = svgEl("g", { class: "seats" });
    const r = 0.4 * pitch;
    for (let k = 0; k < ids.length; k++) {
      const node = svgEl("circle", { cx: x[k], cy: y[k], r, class: this.tierClass(k), "data-seat-id": ids[k], "data-status": "BLOCKED" });
      this.nodes.push(node);
      seats.append(node);
    }
    this.svg.append(seats);
    const seatAt = (event) => {
      const node = event.target.closest?.("[data-seat-id]");
      return node ? node.getAttribute("data-seat-id") : null;
    };
    seats.addEventListener("click", (event) => {
      const id = seatAt(event);
      if (id) pick(id);
    });
    seats.addEventListener("mouseover", (event) => hover(seatAt(event)));
    seats.addEventListener("mouseleave", () => hover(null));
  }

  /** Apply `{ids, status, legend}` (a snapshot or a change); returns the ids that changed. */
  apply(packed) {
    const changed = [];
    const codes = packed.legend.map((name) => STATUSES.indexOf(name));
    for (let i = 0; i < packed.ids.length; i++) {
      const k = this.index.get(packed.ids[i]);
      const code = codes[packed.status[i]];
      if (k === undefined || code < 0 || this.status[k] === code) continue;
      this.status[k] = code;
      this.dirty.add(k);
      changed.push(packed.ids[i]);
    }
    this.schedule();
    return changed;
  }

  mark(id, kind) {
    const k = this.index.get(id);
    if (k === undefined) return;
    if (kind) this.marks.set(id, kind);
    else this.marks.delete(id);
    this.dirty.add(k);
    this.schedule();
  }

  schedule() {
    if (this.frame || !this.dirty.size) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      for (const k of this.dirty) {
        const node = this.nodes[k];
        node.setAttribute("data-status", STATUSES[this.status[k]]);
        const kind = this.marks.get(this.ids[k]);
        if (kind) node.setAttribute("data-mark", kind);
        else node.removeAttribute("data-mark");
      }
      this.dirty.clear();
    });
  }

  statusOf(id) {
    const k = this.index.get(id);
    return k === undefined ? null : STATUSES[this.status[k]];
  }

  label(id) {
    const k = this.index.get(id);
    return k === undefined ? id : this.compact.labels[k];
  }
}

/**
 * seatAvailability applied by version: a snapshot replaces everything; a change applies when
 * its previousVersion is at most ours; a gap (previousVersion > ours) re-reads
 * sessionAvailability, and updates arriving meanwhile wait for it.
 */
class AvailabilityFeed {
  constructor(socket, sessionId, { apply, tiers, failed }) {
    this.sessionId = sessionId;
    this.version = -1;
    this.pending = null;
    this.handlers = { apply, tiers, failed };
    this.stop = socket.subscribe(OPS.seatFeed, { sessionId }, {
      next: (data) => this.receive(data.seatAvailability),
      error: (errors) => failed(new ApiError(errors)),
      complete: () => {},
    });
  }

  receive(update) {
    if (this.pending) {
      this.pending.push(update);
      return;
    }
    if (!update.snapshot) {
      if (update.version <= this.version) return;
      if (update.previousVersion !== null && update.previousVersion > this.version) {
        this.resync(update);
        return;
      }
    }
    this.take(update);
  }

  take(update) {
    this.version = update.version;
    this.handlers.apply(update.compact);
    this.handlers.tiers(update.tiers);
  }

  async resync(trigger) {
    this.pending = [trigger];
    try {
      const data = await http.request(OPS.availability, { sessionId: this.sessionId });
      if (data.sessionAvailability.version > this.version) this.take(data.sessionAvailability);
    } catch (error) {
      this.handlers.failed(error);
    } finally {
      const waiting = this.pending;
      this.pending = null;
      for (const update of waiting) if (update.version > this.version) this.receive(update);
    }
  }
}

// ---------------------------------------------------------------- the page

const app = {
  user: null,
  refreshToken: null,
  refreshTimer: null,
  features: { tickets: false, queue: false },
  socket: null,
  session: null,
  board: null,
  feed: null,
  tierAvailable: new Map(),
  selected: new Set(),
  hold: null,
  queueToken: null,
  stopQueue: null,
  order: null,
  stopOrder: null,
  ticker: null,
};

function show(screen) {
  for (const name of ["login", "events", "queue", "map"]) $(`${name}-screen`).hidden = name !== screen;
}

function say(text, kind = "info") {
  const box = $("map-message");
  box.textContent = text;
  box.dataset.kind = kind;
}

function setLink(state) {
  const link = $("link");
  link.dataset.state = state;
  link.textContent = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…", refused: "refused", idle: "idle" }[state] ?? state;
}

// --- sign-in

async function signIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  $("login-button").disabled = true;
  try {
    const data = await http.request(OPS.login, { input: { email: $("email").value.trim(), password: $("password").value } });
    const auth = data.login;
    app.user = auth.user;
    useTokens(auth);
    app.socket = new GraphQLSocket(
      `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`,
      () => ({ Authorization: `Bearer ${http.token}` }),
      setLink,
    );
    app.features = await detectFeatures();
    $("who-name").textContent = auth.user.nickname || auth.user.email || auth.user.id;
    $("who").hidden = false;
    await showEvents();
  } catch (error) {
    $("login-error").textContent = problem(error);
  } finally {
    $("login-button").disabled = false;
  }
}

function useTokens(auth) {
  http.token = auth.accessToken;
  app.refreshToken = auth.refreshToken;
  clearTimeout(app.refreshTimer);
  app.refreshTimer = setTimeout(refreshTokens, Math.max(30, auth.expiresIn * 0.8) * 1000);
}

async function refreshTokens() {
  try {
    const data = await http.request(OPS.refresh, { token: app.refreshToken });
    useTokens(data.refreshToken);
    // A socket keeps the token of its connection_init; new subscriptions on it would fail
    // once that token expires, so reconnect with the new one.
    app.socket?.restart();
  } catch (error) {
    say(problem(error), "error");
  }
}

async function signOut() {
  leaveSession();
  const token = app.refreshToken;
  clearTimeout(app.refreshTimer);
  app.socket?.dispose();
  app.socket = null;
  setLink("idle");
  if (token) http.request(OPS.logout, { token }).catch(() => {});
  http.token = null;
  app.user = null;
  $("who").hidden = true;
  show("login");
}

// --- events

async function showEvents() {
  leaveSession();
  show("events");
  $("events-message").textContent = "";
  const list = $("event-list");
  list.replaceChildren();
  const data = await http.request(OPS.events);
  const events = data.events.nodes;
  $("events-empty").hidden = events.length > 0;
  for (const event of events) {
    const sessions = el("div", { class: "sessions" });
    for (const session of event.sessions) {
      const button = el("button", { type: "button", "data-session-id": session.id, disabled: session.status !== "ON_SALE" },
        when(session.startsAt),
        session.queueEnabled ? el("span", { class: "badge" }, "waiting room") : null,
        session.seatMapId ? null : el("span", { class: "badge" }, "standing"),
        session.status === "ON_SALE" ? null : el("span", { class: "badge" }, session.status.toLowerCase().replace("_", " ")));
      button.addEventListener("click", () => openSession(session.id).catch((error) => alertError(error)));
      sessions.append(button);
    }
    list.append(el("li", { class: "card event" },
      el("h3", {}, event.title),
      el("p", { class: "hint" }, [event.venue?.name, event.city].filter(Boolean).join(" · ")),
      sessions));
  }
}

function alertError(error) {
  say(problem(error), "error");
  $("events-message").textContent = problem(error);
}

// --- opening a session: the waiting room first when it has one

async function openSession(sessionId) {
  const data = await http.request(OPS.session, { id: sessionId });
  const session = data.session;
  if (!session) throw new Error("That session no longer exists.");
  app.session = session;
  if (session.queueEnabled && app.features.queue) {
    await enterQueue(session);
    return;
  }
  showMap(session);
  if (session.queueEnabled) {
    say("This session sells through the waiting room, which this server does not offer yet: you can watch the seats live but not hold them.", "warn");
  }
}

async function enterQueue(session) {
  show("queue");
  $("queue-title").textContent = `Waiting room · ${session.event?.title ?? ""}`;
  $("queue-message").textContent = "";
  $("queue-rejoin").hidden = true;
  try {
    const data = await http.request(OPS.joinQueue, { eventId: session.eventId, deviceId: deviceId() });
    queueTicket(session, data.joinQueue);
    if (data.joinQueue.status !== "WAITING") return;
  } catch (error) {
    $("queue-message").textContent = problem(error);
    $("queue-rejoin").hidden = false;
    return;
  }
  app.stopQueue?.();
  app.stopQueue = app.socket.subscribe(OPS.queueFeed, { eventId: session.eventId }, {
    next: (data) => queueTicket(session, data.queuePosition),
    error: (errors) => {
      const error = new ApiError(errors);
      $("queue-message").textContent = error.code === "NOT_FOUND" ? "You are no longer in line." : problem(error);
      $("queue-rejoin").hidden = false;
    },
    complete: () => {},
  });
}

function queueTicket(session, ticket) {
  if (app.session?.id !== session.id) return;
  $("queue-position").textContent = ticket.position ?? "–";
  $("queue-ahead").textContent = ticket.ahead ?? "–";
  $("queue-wait").textContent = waitText(ticket.estimatedWaitSeconds);
  $("queue-status").textContent = ticket.status;
  if (ticket.status === "WAITING" && ticket.position === null) {
    $("queue-message").textContent = "The order of early arrivals is drawn when the sale opens.";
  }
  if (ticket.status === "ADMITTED") {
    app.stopQueue?.();
    app.stopQueue = null;
    app.queueToken = ticket.queueToken;
    showMap(session);
    say("You are in: pick your seats.");
  } else if (ticket.status === "EXPIRED") {
    app.stopQueue?.();
    app.stopQueue = null;
    $("queue-message").textContent = "Your admission ended unused.";
    $("queue-rejoin").hidden = false;
  }
}

/** A queue token for one createHold: the one from admission, then a fresh one per hold. */
async function queueTokenForHold() {
  if (!app.session.queueEnabled || !app.features.queue) return null;
  if (app.queueToken) {
    const token = app.queueToken;
    app.queueToken = null;
    return token;
  }
  const data = await http.request(OPS.queueStatus, { eventId: app.session.eventId });
  const ticket = data.queueStatus;
  if (ticket?.status === "ADMITTED" && ticket.queueToken) return ticket.queueToken;
  await enterQueue(app.session);
  return undefined;
}

// --- the seat map

function showMap(session) {
  app.feed?.stop();
  show("map");
  say("");
  $("session-title").textContent = session.event?.title ?? "";
  $("session-meta").textContent = [when(session.startsAt), session.event?.venue?.name, session.seatMap ? `${session.seatMap.seatCount} seats` : "general admission"]
    .filter(Boolean).join(" · ");
  app.selected.clear();
  app.tierAvailable = new Map(session.tiers.map((tier) => [tier.id, tier.available]));
  const svg = $("seat-map");
  svg.replaceChildren();
  svg.toggleAttribute("hidden", !session.seatMap); // an SVG element has no `hidden` property
  $("legend").hidden = !session.seatMap;
  $("no-map").hidden = Boolean(session.seatMap);
  app.board = session.seatMap
    ? new SeatBoard(svg, session.seatMap.compact, session.tiers, { pick: pickSeat, hover: hoverSeat })
    : null;
  renderTiers();
  renderSelection();
  renderHold();
  renderOrder();
  app.feed = new AvailabilityFeed(app.socket, session.id, {
    apply: seatsChanged,
    tiers: (tiers) => {
      for (const { tierId, available } of tiers) app.tierAvailable.set(tierId, available);
      renderTiers();
    },
    failed: (error) => say(problem(error), "error"),
  });
}

function leaveSession() {
  app.feed?.stop();
  app.feed = null;
  app.stopQueue?.();
  app.stopQueue = null;
  app.stopOrder?.();
  app.stopOrder = null;
  if (app.hold && !app.order) http.request(OPS.release, { token: app.hold.token }).catch(() => {});
  app.hold = null;
  app.order = null;
  app.queueToken = null;
  app.session = null;
  app.board = null;
  clearInterval(app.ticker);
}

function seatsChanged(packed) {
  if (!app.board) return;
  const changed = app.board.apply(packed);
  const taken = changed.filter((id) => app.selected.has(id) && app.board.statusOf(id) !== "AVAILABLE");
  for (const id of taken) {
    app.selected.delete(id);
    app.board.mark(id, null);
  }
  if (taken.length) {
    say(`${taken.map((id) => app.board.label(id)).join(", ")} just went to someone else.`, "warn");
    renderSelection();
  }
}

function tierById(id) {
  return app.session?.tiers.find((tier) => tier.id === id) ?? null;
}

function hoverSeat(id) {
  const line = $("seat-hover");
  if (!id || !app.board) {
    line.textContent = "\u00a0";
    return;
  }
  const k = app.board.index.get(id);
  const tier = tierById(app.board.tierOf(k));
  line.textContent = [app.board.label(id), tier ? `${tier.name} ${money(tier.price)}` : null, app.board.statusOf(id).toLowerCase()]
    .filter(Boolean).join(" · ");
}

function selectionLimit() {
  const limits = [app.session.purchaseLimit, ...app.session.tiers.filter((t) => t.seated).map((t) => t.limitPerOrder)];
  return Math.min(...limits.filter((n) => Number.isInteger(n) && n > 0), 10);
}

/** Seats can be held: the sale is open and, behind a waiting room, the server has one. */
function canBuy() {
  const session = app.session;
  return Boolean(session) && session.status === "ON_SALE" && (!session.queueEnabled || app.features.queue);
}

function pickSeat(id) {
  if (!canBuy()) return;
  if (app.hold || app.order) {
    say("Order or release the seats you hold before choosing others.", "warn");
    return;
  }
  if (app.selected.has(id)) {
    app.selected.delete(id);
    app.board.mark(id, null);
  } else {
    const status = app.board.statusOf(id);
    if (status !== "AVAILABLE") {
      say(`${app.board.label(id)} is ${status.toLowerCase()}.`, "warn");
      return;
    }
    if (app.selected.size >= selectionLimit()) {
      say(`At most ${selectionLimit()} seats per order.`, "warn");
      return;
    }
    app.selected.add(id);
    app.board.mark(id, "selected");
  }
  say("");
  renderSelection();
}

function renderTiers() {
  const list = $("tier-list");
  list.replaceChildren();
  for (const [i, tier] of (app.session?.tiers ?? []).entries()) {
    const item = el("li", {},
      el("i", { class: `swatch tier-${i % 6}` }),
      el("span", { class: "name" }, tier.name),
      el("span", { class: "price" }, money(tier.price)),
      el("span", { class: "left", "data-tier-id": tier.id }, `${app.tierAvailable.get(tier.id) ?? tier.available} left`));
    if (!tier.seated && canBuy()) {
      const quantity = el("input", { type: "number", min: 1, max: tier.limitPerOrder || 6, value: 1, "aria-label": `${tier.name} quantity` });
      const button = el("button", { type: "button", class: "small" }, "Hold");
      button.addEventListener("click", () => holdSeats({ tierId: tier.id, quantity: Number(quantity.value) }));
      item.append(el("span", { class: "ga" }, quantity, button));
    }
    list.append(item);
  }
}

function renderSelection() {
  const list = $("selection");
  list.replaceChildren();
  for (const id of app.selected) list.append(el("li", {}, app.board.label(id)));
  $("selection-empty").hidden = app.selected.size > 0;
  $("select-box").hidden = Boolean(app.hold || app.order) || !app.board || !canBuy();
  const button = $("hold-button");
  button.disabled = app.selected.size === 0;
  button.textContent = app.selected.size > 1 ? `Hold ${app.selected.size} seats` : "Hold seat";
}

async function holdSeats(choice = null) {
  if (app.hold || app.order) {
    say("Order or release what you hold first.", "warn");
    return;
  }
  const session = app.session;
  const input = { sessionId: session.id, ...(choice ?? { seatIds: [...app.selected] }) };
  $("hold-button").disabled = true;
  try {
    let hold;
    for (let attempt = 0; ; attempt++) {
      const queueToken = await queueTokenForHold();
      if (queueToken === undefined) return; // back in the waiting room
      try {
        hold = (await http.request(OPS.hold, { input: { ...input, queueToken } })).createHold;
        break;
      } catch (error) {
        const stale = error instanceof ApiError && ["QUEUE_TOKEN_INVALID", "QUEUE_TOKEN_REQUIRED"].includes(error.code);
        if (!stale || attempt > 0 || !app.features.queue) throw error;
      }
    }
    if (app.session !== session) {
      http.request(OPS.release, { token: hold.token }).catch(() => {});
      return;
    }
    app.hold = { ...hold, idempotencyKey: randomKey() };
    for (const id of app.selected) app.board.mark(id, null);
    app.selected.clear();
    for (const seat of hold.seats) app.board?.mark(seat.id, "mine");
    say(hold.seats.length ? "Held: every other window now shows these seats as held." : "Held: the tier's count went down in every window.");
    startTicker();
  } catch (error) {
    const taken = error.extensions?.seats ?? [];
    for (const id of taken) {
      app.selected.delete(id);
      app.board?.mark(id, null);
    }
    say(`${problem(error)}${taken.length && app.board ? ` (${taken.map((id) => app.board.label(id)).join(", ")})` : ""}`, "error");
  } finally {
    renderSelection();
    renderHold();
  }
}

function renderHold() {
  const hold = app.hold;
  $("hold-box").hidden = !hold || Boolean(app.order);
  if (!hold) return;
  const list = $("hold-seats");
  list.replaceChildren();
  for (const seat of hold.seats) list.append(el("li", {}, seat.label));
  if (!hold.seats.length) {
    for (const item of hold.items) list.append(el("li", {}, `${item.quantity} × ${item.tierName}`));
  }
  $("hold-total").textContent = money(hold.total);
  tick();
}

function startTicker() {
  clearInterval(app.ticker);
  app.ticker = setInterval(tick, 250);
  tick();
}

function tick() {
  if (app.order) {
    const pending = app.order.status === "PENDING_PAYMENT" && app.order.expiresAt;
    $("order-countdown").textContent = pending ? `Pay within ${clock(Date.parse(app.order.expiresAt) - serverNow())}` : "";
    if (!pending) clearInterval(app.ticker);
    return;
  }
  if (!app.hold) {
    clearInterval(app.ticker);
    return;
  }
  const left = Date.parse(app.hold.expiresAt) - serverNow();
  $("hold-countdown").textContent = clock(left);
  $("hold-countdown").dataset.urgent = left < 30000 ? "yes" : "no";
  if (left <= 0) {
    forgetHold();
    say("Your hold expired: the seats went back on sale.", "warn");
  }
}

function forgetHold() {
  for (const seat of app.hold?.seats ?? []) app.board?.mark(seat.id, null);
  app.hold = null;
  renderHold();
  renderSelection();
}

async function releaseHold() {
  const hold = app.hold;
  if (!hold) return;
  try {
    await http.request(OPS.release, { token: hold.token });
    say("Released.");
  } catch (error) {
    say(problem(error), "error");
  }
  forgetHold();
}

// --- order, payment, tickets

async function placeOrder() {
  const hold = app.hold;
  if (!hold) return;
  $("order-button").disabled = true;
  try {
    const contact = { name: $("contact-name").value.trim() || null, phone: $("contact-phone").value.trim() || null };
    const order = (await http.request(OPS.order, { input: { holdToken: hold.token, idempotencyKey: hold.idempotencyKey, contact } })).createOrder;
    app.order = { ...order, payment: null, tickets: null };
    $("pay-button").disabled = false;
    watchOrder(order.id);
    say("Ordered: the seats stay yours until the order is paid or expires.");
  } catch (error) {
    say(problem(error), "error");
    if (error instanceof ApiError && ["HOLD_EXPIRED", "HOLD_NOT_FOUND"].includes(error.code)) forgetHold();
  } finally {
    $("order-button").disabled = false;
    renderHold();
    renderOrder();
    renderSelection();
  }
}

function watchOrder(orderId) {
  app.stopOrder?.();
  app.stopOrder = app.socket.subscribe(OPS.orderFeed, { orderId }, {
    next: (data) => orderChanged(data.orderUpdates),
    error: (errors) => say(problem(new ApiError(errors)), "error"),
    complete: () => {},
  });
}

function orderChanged(update) {
  if (!app.order || app.order.id !== update.id) return;
  const was = app.order.status;
  Object.assign(app.order, update);
  if (update.status === "PAID" && was !== "PAID") {
    say("Paid. Every other window now sees these seats as sold.");
    loadTickets(update.id, 0);
  }
  if (["CANCELLED", "EXPIRED"].includes(update.status)) {
    for (const seat of app.hold?.seats ?? []) app.board?.mark(seat.id, null);
    say(`The order was ${update.status.toLowerCase()}.`, "warn");
  }
  renderOrder();
}

async function pay() {
  const order = app.order;
  if (!order) return;
  $("pay-button").disabled = true;
  try {
    order.payment ??= (await http.request(OPS.pay, { orderId: order.id })).startPayment;
    const payment = order.payment;
    // The sandbox payer: the server signs and delivers the provider's callback to itself.
    const response = await fetch(`/sandbox/payments/${encodeURIComponent(payment.paymentNo)}/complete`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ result: "SUCCESS" }),
    });
    if (!response.ok) throw new Error(`The sandbox answered HTTP ${response.status}.`);
    say("Payment sent: waiting for the order to turn PAID…");
  } catch (error) {
    say(problem(error), "error");
    $("pay-button").disabled = false;
  }
}

async function loadTickets(orderId, attempt) {
  if (!app.features.tickets) {
    app.order.tickets = null;
    renderOrder();
    return;
  }
  try {
    const data = await http.request(OPS.tickets, { orderId });
    if (app.order?.id !== orderId) return;
    const tickets = data.order?.tickets ?? [];
    app.order.tickets = tickets;
    renderOrder();
    if (!tickets.length && attempt < 8) setTimeout(() => loadTickets(orderId, attempt + 1), 500 * 2 ** Math.min(attempt, 4));
  } catch (error) {
    say(problem(error), "error");
  }
}

function renderOrder() {
  const order = app.order;
  $("order-box").hidden = !order;
  if (!order) return;
  $("order-no").textContent = order.orderNo;
  $("order-status").textContent = order.status;
  $("order-status").dataset.status = order.status;
  const payable = order.status === "PENDING_PAYMENT";
  $("pay-button").hidden = !payable;
  $("pay-hint").hidden = !payable;
  if (payable) $("pay-button").textContent = `Pay ${money(order.total)} in the sandbox`;
  $("again-button").hidden = order.status === "PENDING_PAYMENT";
  const box = $("tickets");
  box.replaceChildren();
  if (order.status === "PAID") {
    if (!order.tickets?.length) {
      box.append(el("p", { class: "hint", id: "tickets-pending" }, "Order paid, tickets are being issued."));
    }
    for (const ticket of order.tickets ?? []) {
      const figure = el("figure", { class: "ticket", "data-ticket-sn": ticket.ticketSn },
        ticket.qrSvg
          // an <img> renders the SVG without running anything in it; the markup is never inlined
          ? el("img", { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(ticket.qrSvg)}`, alt: `QR code of ticket ${ticket.ticketSn}` })
          : null,
        el("figcaption", {}, [ticket.seat?.label, ticket.ticketSn, ticket.status].filter(Boolean).join(" · ")));
      box.append(figure);
    }
  }
  tick();
}

function buyMore() {
  app.stopOrder?.();
  app.stopOrder = null;
  if (app.order?.status === "PAID") for (const seat of app.hold?.seats ?? []) app.board?.mark(seat.id, null);
  app.order = null;
  app.hold = null;
  say("");
  renderHold();
  renderOrder();
  renderSelection();
}

// ---------------------------------------------------------------- wiring

$("login-form").addEventListener("submit", signIn);
$("logout").addEventListener("click", signOut);
$("map-back").addEventListener("click", () => showEvents().catch(alertError));
$("queue-back").addEventListener("click", () => showEvents().catch(alertError));
$("queue-rejoin").addEventListener("click", () => app.session && enterQueue(app.session));
$("hold-button").addEventListener("click", () => holdSeats());
$("release-button").addEventListener("click", releaseHold);
$("order-button").addEventListener("click", placeOrder);
$("pay-button").addEventListener("click", pay);
$("again-button").addEventListener("click", buyMore);
document.documentElement.dataset.ready = "yes";
