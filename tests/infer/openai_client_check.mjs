// Drives a running `lmforge serve` with the official OpenAI Node client (tests/infer/package.json;
// scripts/install_deps.sh installs it into tests/infer/node_modules). Run by server_test.cpp:
//   node openai_client_check.mjs BASE_URL MODEL API_KEY
// Prints one JSON object with what it got; exits non-zero (with the reason on stderr) on any
// unexpected answer.
import OpenAI from 'openai';

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });

function check(cond, what) {
  if (!cond) {
    console.error(`openai client check failed: ${what}`);
    process.exit(1);
  }
}

const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);
check(out.models.length === 1 && out.models[0] === model, `models.list gave ${JSON.stringify(out.models)}`);

const completion = await client.completions.create({ model, prompt: 'In the beginning', max_tokens: 12, temperature: 0 });
out.completion = completion.choices[0].text;
out.completion_usage = completion.usage;
check(typeof out.completion === 'string', 'completion text is not a string');
check(completion.usage.completion_tokens >= 1 && completion.usage.completion_tokens <= 12, 'completion usage');

let streamed = '';
let chunks = 0;
let finish = null;
const stream = await client.completions.create({ model, prompt: 'In the beginning', max_tokens: 12, temperature: 0, stream: true });
for await (const part of stream) {
  streamed += part.choices[0]?.text ?? '';
  finish = part.choices[0]?.finish_reason ?? finish;
  chunks += 1;
}
out.completion_stream = streamed;
out.completion_stream_chunks = chunks;
check(streamed === out.completion, `streamed completion ${JSON.stringify(streamed)} != ${JSON.stringify(out.completion)}`);
check(finish === 'length' || finish === 'stop', `stream finish_reason ${finish}`);

const chat = await client.chat.completions.create({
  model,
  messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say something.' }],
  max_tokens: 10,
  temperature: 0,
  seed: 3,
});
out.chat = chat.choices[0].message.content;
check(chat.choices[0].message.role === 'assistant', 'chat role');
check(typeof out.chat === 'string', 'chat content');

let chatStreamed = '';
const chatStream = await client.chat.completions.create({
  model,
  messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say something.' }],
  max_tokens: 10,
  temperature: 0,
  seed: 3,
  stream: true,
  stream_options: { include_usage: true },
});
let usage = null;
for await (const part of chatStream) {
  chatStreamed += part.choices[0]?.delta?.content ?? '';
  if (part.usage) usage = part.usage;
}
out.chat_stream = chatStreamed;
check(chatStreamed === out.chat, `streamed chat ${JSON.stringify(chatStreamed)} != ${JSON.stringify(out.chat)}`);
check(usage && usage.total_tokens === usage.prompt_tokens + usage.completion_tokens, 'stream usage');

try {
  await client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 });
  check(false, 'an unknown model was accepted');
} catch (e) {
  check(e instanceof OpenAI.APIError && e.status === 404, `unknown model gave ${e}`);
  out.unknown_model_error = e.message;
}
try {
  await client.completions.create({ model, prompt: 'x', max_tokens: 1, temperature: -1 });
  check(false, 'a negative temperature was accepted');
} catch (e) {
  check(e instanceof OpenAI.APIError && e.status === 400, `negative temperature gave ${e}`);
  out.bad_temperature_error = e.message;
}

console.log(JSON.stringify(out));
