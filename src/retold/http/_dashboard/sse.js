// A run's event stream over fetch: EventSource cannot send the Authorization header.
// It resumes from the last event received (Last-Event-ID), as EventSource would.

import {AuthError, headers, url} from "./api.js";

/** Parse a text/event-stream body into {id, event, data} messages. */
async function* messages(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message = {id: null, event: "message", data: []};
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
      if (line === "") {
        if (message.data.length) yield {id: message.id, event: message.event, data: message.data.join("\n")};
        message = {id: null, event: "message", data: []};
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") message.data.push(value);
        else if (field === "event") message.event = value;
        else if (field === "id") message.id = value;
      }
    }
  }
}

/**
 * Follow a run's events from event number `after`: onEvent(event) for each, in order, once each.
 * Reconnects with Last-Event-ID when the connection drops; stops once `done()` says the run's final
 * event has come (or the server answers 204), on stop(), or on an error other than a dropped connection.
 * onState(state) reports "live", "reconnecting", "ended", or an Error; onStatus(data) gets status messages.
 */
export function follow(id, {after = 0, onEvent, onState, onStatus, done = () => false}) {
  const controller = new AbortController();
  let last = after;
  let stopped = false;

  async function run() {
    let delay = 500;
    while (!stopped) {
      try {
        const response = await fetch(url(`runs/${encodeURIComponent(id)}/events`), {
          headers: headers(last ? {"Last-Event-ID": String(last)} : {}),
          signal: controller.signal,
          cache: "no-store",
        });
        if (response.status === 204) { onState("ended"); return; }
        if (response.status === 401) throw new AuthError("a valid token is required");
        if (!response.ok) throw new Error(`the event stream answered ${response.status}`);
        onState("live");
        for await (const message of messages(response.body)) {
          // A message without an id is not an event: a "status" message (the run is blocked, or no longer is).
          if (message.id === null) {
            if (message.event === "status" && onStatus) onStatus(JSON.parse(message.data));
            continue;
          }
          const event = JSON.parse(message.data);
          last = event.seq;
          delay = 500;
          onEvent(event);
        }
        if (done()) { onState("ended"); return; }
      } catch (error) {
        if (stopped) return;
        if (error instanceof AuthError || !(error instanceof TypeError)) { onState(error); return; }
        // A TypeError from fetch or the reader: the connection dropped; try again.
      }
      if (stopped) return;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  run();
  return {
    stop() { stopped = true; controller.abort(); },
    get last() { return last; },
  };
}
