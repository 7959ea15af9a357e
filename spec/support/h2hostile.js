// A hostile HTTP/2 server for spec/h2_hostile_spec.lua: it misbehaves on
// purpose, the way a broken gateway or a server under load can, to check
// that every aigc request still ends with a result or a clear error.
// Node's built-in http2 only (Debian 12's nodejs 18 runs it; no npm).
//
//   node h2hostile.js CERT KEY
//
// prints "H2PORT CONC1PORT COUNTPORT UNKNOWNPORT PINGPORT" on one line once
// it listens:
// - H2PORT: TLS + h2; the request path /MODE/TOKEN/v1/... picks the
//   misbehaviour (MODES below); TOKEN counts the attempts of one test;
// - CONC1PORT: TLS + h2 with SETTINGS_MAX_CONCURRENT_STREAMS = 1, answering
//   every request after 20 ms;
// - COUNTPORT: plain HTTP/1.1, GET /TOKEN answers how many requests TOKEN
//   received (as text), so a spec can tell what was retried;
// - UNKNOWNPORT, PINGPORT: raw HTTP/2 (rawServer below) sending frames of
//   unknown types, or 20,000 PINGs, before each answer.
// It exits when its stdin closes (the spec that started it is gone).
'use strict';
const http2 = require('http2');
const http = require('http');
const tls = require('tls');
const fs = require('fs');

const C = http2.constants;
const [cert, key] = [fs.readFileSync(process.argv[2]), fs.readFileSync(process.argv[3])];
const counts = new Map();

function chat (text) {
  return JSON.stringify({ id: 'h', object: 'chat.completion', created: 1, model: 'm',
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }] });
}
function chunk (text, finish) {
  return 'data: ' + JSON.stringify({ id: 'h', object: 'chat.completion.chunk', created: 1, model: 'm',
    choices: [{ index: 0, delta: { content: text }, finish_reason: finish || null }] }) + '\n\n';
}
// Answers in full: JSON, or an event stream when the body asked for one.
function answer (stream, streaming, text) {
  if (stream.destroyed || stream.closed) return;
  if (streaming) {
    stream.respond({ ':status': 200, 'content-type': 'text/event-stream' });
    stream.end(chunk(text) + chunk('', 'stop') + 'data: [DONE]\n\n');
  } else {
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(chat(text));
  }
}
// A reply started (its headers and a first part), then the stream reset
// with INTERNAL_ERROR. (Node's stream.close(code) ends the stream with
// END_STREAM before its RST_STREAM, which the client then ignores: a
// clean end of a short body. destroy(err) sends the RST_STREAM alone.)
function resetMidReply (stream, streaming, withLength) {
  const whole = chat('cut short');
  if (withLength) {
    stream.respond({ ':status': 200, 'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(whole)) });
    stream.write(whole.slice(0, 40));
  } else if (streaming) {
    stream.respond({ ':status': 200, 'content-type': 'text/event-stream' });
    stream.write(chunk('half'));
  } else {
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.write(whole.slice(0, 40));
  }
  setTimeout(() => stream.destroy(new Error('reset on purpose')), 50);
}

// GOAWAY while several requests are in flight: once `want` streams of one
// TOKEN are open on a connection (or 1 s passed), the first is answered and
// a GOAWAY names it as the last stream processed: the others were never
// processed and the client may send them again. With `close`, the
// connection is then closed as well. Only the first connection a TOKEN
// reaches does this; the requests sent again are answered.
const goneAway = new Set();
function goaway (stream, streaming, token, want, close) {
  const session = stream.session;
  if (goneAway.has(token)) return answer(stream, streaming, 'after goaway');
  const held = session.held || (session.held = []);
  held.push([stream, streaming]);
  const fire = () => {
    if (goneAway.has(token)) return;
    goneAway.add(token);
    held.sort((a, b) => a[0].id - b[0].id);   // (held as their bodies ended)
    const [first, firstStreaming] = held[0];
    answer(first, firstStreaming, 'before goaway');
    session.goaway(C.NGHTTP2_NO_ERROR, first.id);
    if (close) setTimeout(() => session.destroy(), 50);
  };
  if (held.length >= want) fire(); else if (held.length === 1) setTimeout(fire, 1000);
}

const MODES = {
  ok: (s, streaming) => answer(s, streaming, 'ok'),
  rst_internal: (s, streaming) => resetMidReply(s, streaming, false),
  rst_internal_cl: (s, streaming) => resetMidReply(s, streaming, true),
  // CANCEL before any header (with nothing sent, close() sends the RST alone)
  rst_cancel: (s) => s.close(C.NGHTTP2_CANCEL),
  // REFUSED_STREAM before any header: the request was not processed
  refused: (s) => s.close(C.NGHTTP2_REFUSED_STREAM),
  refused_once: (s, streaming, token) =>
    counts.get(token) === 1 ? s.close(C.NGHTTP2_REFUSED_STREAM) : answer(s, streaming, 'ok'),
  goaway4: (s, streaming, token) => goaway(s, streaming, token, 4, false),
  goaway4_close: (s, streaming, token) => goaway(s, streaming, token, 4, true),
  // a header block of ~300 KB (aigc's limit is 200 KiB)
  big_headers: (s) => {
    const h = { ':status': 200, 'content-type': 'application/json' };
    for (let i = 0; i < 300; i++) h['x-big-' + i] = String(i).padStart(1000, 'abcdefghij'[i % 10]);
    s.respond(h);
    s.end(chat('big'));
  },
  // a reply with trailers after its body
  trailers: (s) => {
    s.respond({ ':status': 200, 'content-type': 'application/json' }, { waitForTrailers: true });
    s.on('wantTrailers', () => s.sendTrailers({ 'x-trailer': 'end' }));
    s.end(chat('with trailers'));
  },
  // headers, then nothing at all
  silent: (s, streaming) => s.respond({ ':status': 200,
    'content-type': streaming ? 'text/event-stream' : 'application/json' }),
  // never reads the request body (its flow-control window never reopens)
  // and never answers
  noread: (s) => s.pause(),
};

function onStream (stream, headers) {
  const m = /^\/([a-z0-9_]+)\/([A-Za-z0-9_-]+)\//.exec(headers[':path'] || '');
  const mode = m && MODES[m[1]];
  if (!mode) { stream.respond({ ':status': 404 }); stream.end(); return; }
  const token = m[2];
  counts.set(token, (counts.get(token) || 0) + 1);
  stream.on('error', () => {});
  if (m[1] === 'noread') return mode(stream);
  // the body is read whole first (to see "stream": true), except by noread
  const parts = [];
  stream.on('data', (d) => parts.push(d));
  stream.on('end', () => {
    const body = Buffer.concat(parts).toString();
    mode(stream, /"stream":\s*true/.test(body), token);
  });
}

const opts = { cert, key, allowHTTP1: false, maxSendHeaderBlockLength: 1 << 20,
  settings: { maxHeaderListSize: 1 << 20 } };
const h2 = http2.createSecureServer(opts);
h2.on('stream', onStream);
h2.on('sessionError', () => {});
const conc1 = http2.createSecureServer(Object.assign({}, opts,
  { settings: { maxConcurrentStreams: 1 } }));
conc1.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.resume();
  stream.on('end', () => setTimeout(() => answer(stream, false, 'one at a time'), 20));
});
// Raw HTTP/2 (frames written by hand, over tls: Node's http2 cannot send
// these): before each answer, `frames(id)` -- frames of unknown types
// (RFC 9113 5.5: to be ignored), or a flood of PINGs (each wants an ACK).
// Any request gets the same answer; `name` counts them.
function frame (type, flags, id, payload) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3); h[3] = type; h[4] = flags; h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}
function rawServer (name, frames) {
  return tls.createServer({ cert, key, ALPNProtocols: ['h2'] }, (sock) => {
    let buf = Buffer.alloc(0), preface = false;
    const answered = new Set();
    sock.on('error', () => {});
    sock.write(frame(4, 0, 0, Buffer.alloc(0)));   // SETTINGS
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!preface) { if (buf.length < 24) return; buf = buf.subarray(24); preface = true; }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3), type = buf[3], flags = buf[4], id = buf.readUInt32BE(5) & 0x7fffffff;
        if (buf.length < 9 + len) return;
        buf = buf.subarray(9 + len);
        if (type === 4 && !(flags & 1)) sock.write(frame(4, 1, 0, Buffer.alloc(0)));   // SETTINGS ACK
        // a request's end (END_STREAM on its HEADERS or DATA): answered
        if ((type === 0 || type === 1) && (flags & 1) && !answered.has(id)) {
          answered.add(id);
          counts.set(name, (counts.get(name) || 0) + 1);
          const ct = Buffer.from('application/json');
          // HPACK: :status 200 (static 8), content-type (static 31) literal
          const hdrs = Buffer.concat([Buffer.from([0x88, 0x5f, ct.length]), ct]);
          sock.write(Buffer.concat(frames(id).concat([frame(1, 4, id, hdrs),
            frame(0, 1, id, Buffer.from(chat(name)))])));
        }
      }
    });
  });
}
const unknownFrames = rawServer('raw_unknown', (id) => {
  const out = [];
  for (let i = 0; i < 50; i++) out.push(frame(0xfa, 0xff, i % 2 ? id : 0, Buffer.from('junk ' + i)));
  return out;
});
const pingFlood = rawServer('raw_ping', () => {
  const out = [];
  for (let i = 0; i < 20000; i++) out.push(frame(6, 0, 0, Buffer.alloc(8, i & 255)));
  return out;
});

const counter = http.createServer((req, res) => {
  res.end(String(counts.get(req.url.slice(1)) || 0));
});

let listening = 0;
const ports = [];
const servers = [h2, conc1, counter, unknownFrames, pingFlood];
servers.forEach((srv, i) => srv.listen(0, '127.0.0.1', () => {
  ports[i] = srv.address().port;
  if (++listening === servers.length) process.stdout.write(ports.join(' ') + '\n');
}));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
