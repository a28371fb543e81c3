#!/usr/bin/env node
// Load generator for bench/bench-tls.sh (no npm packages needed).
//
// --clients N connections run in a loop until --seconds have passed:
// implicit-TLS connect (full handshake, no session resumption) -> 220 ->
// EHLO -> AUTH PLAIN -> 235 -> QUIT. Meanwhile one separate connection,
// opened and authenticated before the storm, sends NOOP every --interval ms
// (one at a time) and records each reply's latency.
//
//   node tls-load.js --port N --ca cert.pem --user U --pass P
//        [--host 127.0.0.1] [--servername mx.example.test]
//        [--clients 200] [--seconds 20] [--interval 50]
//
// Prints one JSON object: handshakes, auths, errors, seconds, noop {n, p50,
// p99, max} (milliseconds), tls {protocol, cipher} (of the NOOP connection).
'use strict';

const tls = require('tls');
const fs = require('fs');
const {spawn} = require('child_process');

const o = {host: '127.0.0.1', servername: 'mx.example.test', clients: 200, seconds: 20,
  interval: 50, role: 'main'};
for (let i = 2; i < process.argv.length; i += 2) {
  o[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
for (const k of ['port', 'clients', 'seconds', 'interval']) o[k] = Number(o[k]);
const ca = fs.readFileSync(o.ca);
const plain = Buffer.from(`\0${o.user}\0${o.pass}`).toString('base64');

class Conn {
  constructor(onSecure) {
    this.buf = '';
    this.lines = [];
    this.waiter = null;
    this.dead = null;
    this.sock = tls.connect({host: o.host, port: o.port, servername: o.servername, ca,
      minVersion: 'TLSv1.2'}, onSecure);
    this.sock.setEncoding('latin1');
    this.sock.setNoDelay(true);
    this.sock.on('data', (d) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 2);
      }
      this.wake();
    });
    const fail = (e) => { this.dead = this.dead || e || new Error('closed'); this.wake(); };
    this.sock.on('error', fail);
    this.sock.on('close', () => fail(null));
  }
  wake() {
    if (!this.waiter) return;
    // a complete reply: lines up to one whose 4th char is a space
    const idx = this.lines.findIndex((l) => l.length < 4 || l[3] === ' ');
    if (idx >= 0) {
      const w = this.waiter; this.waiter = null;
      w.resolve(this.lines.splice(0, idx + 1));
    } else if (this.dead) {
      const w = this.waiter; this.waiter = null;
      w.reject(this.dead);
    }
  }
  reply() {
    return new Promise((resolve, reject) => { this.waiter = {resolve, reject}; this.wake(); });
  }
  async cmd(line) { this.sock.write(line + '\r\n'); return this.reply(); }
  close() { this.sock.destroy(); }
}

function expect(rep, code) {
  const last = rep[rep.length - 1];
  if (!last.startsWith(code)) throw new Error(`expected ${code}, got ${last}`);
}

const stats = {handshakes: 0, auths: 0, errors: 0, firstError: null};
let deadline = 0;

async function session(counting) {
  let hs = false;
  const c = new Conn(() => { hs = true; if (counting()) stats.handshakes++; });
  try {
    expect(await c.reply(), '220');
    expect(await c.cmd('EHLO load.example.test'), '250');
    expect(await c.cmd('AUTH PLAIN ' + plain), '235');
    if (counting()) stats.auths++;
    try { await c.cmd('QUIT'); } catch (e) { /* a close instead of 221 is fine here */ }
  } catch (e) {
    if (counting()) {
      stats.errors++;
      if (!stats.firstError) stats.firstError = String(e.message || e) + (hs ? '' : ' (handshake)');
    }
  } finally {
    c.close();
  }
}

async function worker() {
  while (Date.now() < deadline) {
    await session(() => Date.now() < deadline);
  }
}

async function prober(lat) {
  const c = new Conn(() => {});
  expect(await c.reply(), '220');
  expect(await c.cmd('EHLO probe.example.test'), '250');
  expect(await c.cmd('AUTH PLAIN ' + plain), '235');
  const tlsInfo = {protocol: c.sock.getProtocol(), cipher: (c.sock.getCipher() || {}).name};
  return {
    tlsInfo,
    async run(until) {
      while (Date.now() < until) {
        const t0 = process.hrtime.bigint();
        expect(await c.cmd('NOOP'), '250');
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        await new Promise((r) => setTimeout(r, o.interval));
      }
      try { await c.cmd('QUIT'); } catch (e) { /* ignore */ }
      c.close();
    },
  };
}

function pct(a, p) {
  if (!a.length) return null;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)];
}

async function probeMain() {
  // Connect and authenticate, say "ready", wait for "go" on stdin, probe for
  // --seconds, print the latencies.
  const lat = [];
  const probe = await prober(lat);
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  await probe.run(Date.now() + o.seconds * 1000);
  process.stdout.write(JSON.stringify({lat, tls: probe.tlsInfo}) + '\n');
}

async function main() {
  if (o.role === 'probe') return probeMain();
  const child = spawn(process.execPath, [__filename, ...process.argv.slice(2), '--role', 'probe'],
    {stdio: ['pipe', 'pipe', 'inherit']});
  let out = '';
  child.stdout.setEncoding('utf8');
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => { out += d; if (out.includes('ready\n')) resolve(); });
    child.on('exit', () => reject(new Error('NOOP prober failed')));
  });
  child.stdin.write('go\n');
  const t0 = Date.now();
  deadline = t0 + o.seconds * 1000;
  const workers = [];
  for (let i = 0; i < o.clients; i++) workers.push(worker());
  await Promise.all(workers);
  const secs = (Date.now() - t0) / 1000;
  const code = await exited;
  if (code !== 0) throw new Error('NOOP prober exited with ' + code);
  const {lat, tls: tlsInfo} = JSON.parse(out.split('\n').filter((l) => l.startsWith('{'))[0]);
  const r = (x) => (x === null ? null : Math.round(x * 100) / 100);
  process.stdout.write(JSON.stringify({
    clients: o.clients, seconds: Math.round(secs * 10) / 10,
    handshakes: stats.handshakes, auths: stats.auths, errors: stats.errors,
    first_error: stats.firstError,
    handshakes_per_s: Math.round(stats.handshakes / o.seconds * 10) / 10,
    auths_per_s: Math.round(stats.auths / o.seconds * 10) / 10,
    noop: {n: lat.length, p50: r(pct(lat, 50)), p99: r(pct(lat, 99)),
      max: r(lat.length ? Math.max(...lat) : null)},
    tls: tlsInfo,
  }) + '\n');
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write('tls-load: ' + (e && e.stack || e) + '\n');
  process.exit(1);
});
