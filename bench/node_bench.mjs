// The official OpenAI Node SDK doing the same work as floor.c and
// aigc_bench.lua: build the request, send it, read
// choices[0].message.content and check it.
//
//   node bench/node_bench.mjs seq    BASE_URL N EXPECT_FILE      one await after another
//   node bench/node_bench.mjs all    BASE_URL N EXPECT_FILE K    Promise.all of K, repeated
//   node bench/node_bench.mjs stream BASE_URL N EXPECT_FILE      for await over the chunks
//
// Prints "ok n=... wall=... cpu=... rss_kb=..." (CPU: process.cpuUsage(),
// user+sys of every thread, of the timed part only).
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [mode, baseURL, nArg, expectFile, kArg] = process.argv.slice(2);
const n = Number(nArg);
const k = Number(kArg || 64);
const expect = readFileSync(expectFile, 'utf8');
const client = new OpenAI({ baseURL, apiKey: 'sk-bench', maxRetries: 0 });
// V8 compiles the SDK's hot paths after a few hundred calls: let it.
const WARMUP = 300;

function params(i) {
  return {
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: `Say hello to request ${i}.` },
    ],
    temperature: 0.7,
    max_tokens: 128,
  };
}

async function one(i) {
  const res = await client.chat.completions.create(params(i));
  if (res.choices[0].message.content !== expect) throw new Error('unexpected response content');
}

let chunks = 0;
async function oneStream(i) {
  const stream = await client.chat.completions.create({ ...params(i), stream: true });
  let text = '';
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  if (text !== expect) throw new Error('unexpected stream content');
}

async function timed(fn) {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

async function main() {
  let r;
  if (mode === 'seq') {
    for (let i = 0; i < WARMUP; i++) await one(i);
    r = await timed(async () => { for (let i = 0; i < n; i++) await one(i); });
  } else if (mode === 'all') {
    const batch = async (count) => {
      for (let done = 0; done < count; done += k) {
        const ps = [];
        for (let j = 0; j < k && done + j < count; j++) ps.push(one(done + j));
        await Promise.all(ps);
      }
    };
    await batch(2 * k);
    r = await timed(() => batch(n));
  } else if (mode === 'stream') {
    for (let i = 0; i < WARMUP / 10; i++) await oneStream(i);
    chunks = 0;
    r = await timed(async () => { for (let i = 0; i < n; i++) await oneStream(i); });
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  const rss = process.resourceUsage().maxRSS;
  console.log(`ok n=${n} wall=${r.wall.toFixed(6)} cpu=${r.cpu.toFixed(6)} rss_kb=${rss}`
              + (mode === 'stream' ? ` chunks=${chunks}` : ''));
}

main().catch((e) => { console.error(`node_bench: ${e.stack || e}`); process.exit(1); });
