// http_openai_client.mjs: the official OpenAI Node client against swisd's
// HTTP API. usage: node http_openai_client.mjs BASE_URL EXPECTED_TEXT_FILE
// Prints "ok" lines and exits 1 on the first mismatch.
import fs from 'node:fs';
import OpenAI from 'openai';

const [base, expectedFile] = process.argv.slice(2);
const expected = fs.readFileSync(expectedFile, 'utf8');
const client = new OpenAI({ baseURL: base, apiKey: 'unused' });
const fail = (m) => { console.log('FAIL: ' + m); process.exit(1); };

const models = await client.models.list();
if (!models.data.length || models.data[0].id !== 'stories260K') fail('models: ' + JSON.stringify(models.data));
console.log('ok models');

const c = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 40,
                                            temperature: 0 });
if (c.choices[0].text !== expected) fail('completion: ' + JSON.stringify(c.choices[0].text));
if (c.usage.completion_tokens !== 40) fail('usage: ' + JSON.stringify(c.usage));
console.log('ok completion');

const stream = await client.completions.create({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 40,
                                                 temperature: 0, stream: true });
let text = '';
for await (const chunk of stream) text += chunk.choices[0].text;
if (text !== expected) fail('streamed completion: ' + JSON.stringify(text));
console.log('ok stream');

const chat = await client.chat.completions.create({ model: 'stories260K', max_tokens: 8,
    messages: [{ role: 'user', content: 'Tell me a story' }] });
if (chat.choices[0].message.role !== 'assistant' || typeof chat.choices[0].message.content !== 'string')
  fail('chat: ' + JSON.stringify(chat.choices[0]));
console.log('ok chat');

const cs = await client.chat.completions.create({ model: 'stories260K', max_tokens: 8, stream: true,
    messages: [{ role: 'user', content: 'Tell me a story' }] });
let n = 0;
for await (const chunk of cs) if (chunk.choices[0].delta.content !== undefined) n++;
if (n < 1) fail('chat stream gave no deltas');
console.log('ok chat stream');

try {
  await client.completions.create({ model: 'stories260K', prompt: 'x', max_tokens: 100000 });
  fail('a bad max_tokens was accepted');
} catch (e) {
  if (e.status !== 400) fail('bad request status ' + e.status);
}
console.log('ok error');
