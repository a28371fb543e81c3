#!/usr/bin/env node
// SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) with tls-exporter channel binding
// (RFC 9266) over SMTP AUTH (RFC 4954): an independent client for hermod's
// tests. Node is used because its TLS sockets expose exportKeyingMaterial()
// (Python's ssl module does not).
//
//   node scram_plus.js --port N [--host 127.0.0.1] [--mode implicit|starttls]
//        [--servername mx.example.test] --ca cert.pem --user U --pass P
//        [--mech SCRAM-SHA-256-PLUS|SCRAM-SHA-256] [--bad-cb] [--cb-type T]
//
// --bad-cb sends a wrong channel-binding value (the exporter with its first
// byte flipped). Prints one JSON object on stdout:
//   {"ehlo": [...lines...], "tls": "TLSv1.3", "replies": [...], "final": "235 ...",
//    "server_verified": true|false|null}
// and exits 0 when the dialogue ran to a final reply (whatever it was), 2 on
// a protocol or network error.
'use strict';

const net = require('net');
const tls = require('tls');
const fs = require('fs');
const crypto = require('crypto');

function parseArgs(argv) {
  const o = {host: '127.0.0.1', mode: 'implicit', servername: 'mx.example.test',
    mech: 'SCRAM-SHA-256-PLUS', cbType: 'tls-exporter', badCb: false};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i];
    if (a === '--host') o.host = v();
    else if (a === '--port') o.port = Number(v());
    else if (a === '--mode') o.mode = v();
    else if (a === '--servername') o.servername = v();
    else if (a === '--ca') o.ca = v();
    else if (a === '--user') o.user = v();
    else if (a === '--pass') o.pass = v();
    else if (a === '--mech') o.mech = v();
    else if (a === '--cb-type') o.cbType = v();
    else if (a === '--bad-cb') o.badCb = true;
    else throw new Error('unknown argument ' + a);
  }
  if (!o.port || !o.user || o.pass === undefined) throw new Error('need --port, --user, --pass');
  return o;
}

// A reply reader over a (plain or TLS) socket.
class Lines {
  constructor() { this.buf = ''; this.waiters = []; this.lines = []; this.err = null; }
  attach(sock) {
    this.sock = sock;
    sock.setEncoding('latin1');
    sock.on('data', (d) => { this.buf += d; this.pump(); });
    sock.on('error', (e) => { this.err = e; this.pump(); });
    sock.on('close', () => { this.err = this.err || new Error('connection closed'); this.pump(); });
  }
  detach() { this.sock.removeAllListeners('data'); this.sock.removeAllListeners('error');
    this.sock.removeAllListeners('close'); }
  pump() {
    let i;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      this.lines.push(this.buf.slice(0, i));
      this.buf = this.buf.slice(i + 2);
    }
    while (this.waiters.length && (this.lines.length || this.err)) {
      const w = this.waiters.shift();
      if (this.lines.length) w.resolve(this.lines.shift()); else w.reject(this.err);
    }
  }
  line() { return new Promise((resolve, reject) => { this.waiters.push({resolve, reject}); this.pump(); }); }
  async reply() {
    const out = [];
    for (;;) {
      const l = await this.line();
      out.push(l);
      if (l.length < 4 || l[3] === ' ') return out;
    }
  }
}

const H = (data) => crypto.createHash('sha256').update(data).digest();
const HMAC = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const xor = (a, b) => Buffer.from(a.map((x, i) => x ^ b[i]));
const saslname = (s) => s.replace(/=/g, '=3D').replace(/,/g, '=2C');

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ca = o.ca ? fs.readFileSync(o.ca) : undefined;
  const out = {ehlo: null, tls: null, replies: [], final: null, server_verified: null};
  const r = new Lines();
  let sock;
  const tlsOpts = {host: o.host, port: o.port, servername: o.servername, ca,
    rejectUnauthorized: !!ca, minVersion: 'TLSv1.2'};

  const connectTLS = (opts) => new Promise((resolve, reject) => {
    const s = tls.connect(opts, () => resolve(s));
    s.once('error', reject);
  });

  if (o.mode === 'implicit') {
    sock = await connectTLS(tlsOpts);
    r.attach(sock);
    await r.reply();
  } else {
    const plain = await new Promise((resolve, reject) => {
      const s = net.connect({host: o.host, port: o.port}, () => resolve(s));
      s.once('error', reject);
    });
    r.attach(plain);
    await r.reply();
    plain.write('EHLO client.example.test\r\n');
    await r.reply();
    plain.write('STARTTLS\r\n');
    const st = await r.reply();
    if (!st[0].startsWith('220')) throw new Error('STARTTLS refused: ' + st.join(' | '));
    r.detach();
    sock = await connectTLS({...tlsOpts, socket: plain});
    r.buf = ''; r.lines = [];
    r.attach(sock);
  }
  out.tls = sock.getProtocol();
  const send = (line) => sock.write(line + '\r\n');

  send('EHLO client.example.test');
  out.ehlo = await r.reply();

  const plus = o.mech.endsWith('-PLUS');
  const gs2 = plus ? `p=${o.cbType},,` : 'n,,';
  let cbData = Buffer.alloc(0);
  if (plus) {
    // RFC 9266: label "EXPORTER-Channel-Binding", empty context, 32 bytes.
    cbData = sock.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
    if (o.badCb) { cbData = Buffer.from(cbData); cbData[0] ^= 0xff; }
  }
  const cnonce = crypto.randomBytes(18).toString('base64');
  const clientFirstBare = `n=${saslname(o.user)},r=${cnonce}`;
  send(`AUTH ${o.mech} ` + Buffer.from(gs2 + clientFirstBare).toString('base64'));
  let rep = await r.reply();
  out.replies.push(rep.join('\n'));
  if (!rep[0].startsWith('334 ')) { out.final = rep[rep.length - 1]; return out; }
  const serverFirst = Buffer.from(rep[0].slice(4), 'base64').toString('utf8');
  const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
  if (!attrs.r || !attrs.r.startsWith(cnonce) || !attrs.s || !attrs.i) {
    throw new Error('bad server-first-message ' + serverFirst);
  }
  const iter = Number(attrs.i);
  const salt = Buffer.from(attrs.s, 'base64');
  const salted = crypto.pbkdf2Sync(Buffer.from(o.pass, 'utf8'), salt, iter, 32, 'sha256');
  const clientKey = HMAC(salted, 'Client Key');
  const storedKey = H(clientKey);
  const cbind = Buffer.concat([Buffer.from(gs2), cbData]).toString('base64');
  const finalNoProof = `c=${cbind},r=${attrs.r}`;
  const authMessage = `${clientFirstBare},${serverFirst},${finalNoProof}`;
  const proof = xor(clientKey, HMAC(storedKey, authMessage)).toString('base64');
  const serverSig = HMAC(HMAC(salted, 'Server Key'), authMessage).toString('base64');
  send(Buffer.from(`${finalNoProof},p=${proof}`).toString('base64'));
  rep = await r.reply();
  out.replies.push(rep.join('\n'));
  if (rep[0].startsWith('334 ')) {
    const sf = Buffer.from(rep[0].slice(4), 'base64').toString('utf8');
    if (sf.startsWith('v=')) out.server_verified = sf.slice(2) === serverSig;
    else out.server_verified = false;
    send('');
    rep = await r.reply();
    out.replies.push(rep.join('\n'));
  }
  out.final = rep[rep.length - 1];
  if (out.final.startsWith('235')) {
    send('NOOP');
    out.replies.push((await r.reply()).join('\n'));
  }
  send('QUIT');
  try { await r.reply(); } catch (e) { /* closed */ }
  sock.end();
  return out;
}

main().then((out) => {
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}, (e) => {
  process.stderr.write('scram_plus: ' + (e && e.stack || e) + '\n');
  process.exit(2);
});
