"""The official OpenAI and Anthropic SDKs parse Tollgate's `on_limit: stop` answers.

Run by TollgateIntegrationTests (PolicyTests) against a live replica whose client is over its
budget with `on_limit: stop`: every call must return a normal completion (no exception), whose
text says the budget is exhausted, streamed and not. Usage: stop_answers.py BASE_URL CLIENT_ID
"""
import sys

import anthropic
import openai

base, client_id = sys.argv[1], sys.argv[2]
headers = {"X-Client-ID": client_id}
oai = openai.OpenAI(base_url=base + "/v1", api_key="unused", default_headers=headers, max_retries=0)
claude = anthropic.Anthropic(base_url=base, api_key="unused", default_headers=headers, max_retries=0)
texts = {}

chat = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
texts["chat"] = chat.choices[0].message.content

stream = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
texts["chat stream"] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

resp = oai.responses.create(model="gpt-4o-mini", input="hi")
texts["responses"] = resp.output_text

with oai.responses.stream(model="gpt-4o-mini", input="hi") as events:
    texts["responses stream"] = events.get_final_response().output_text

msg = claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
texts["messages"] = msg.content[0].text

with claude.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
    texts["messages stream"] = s.get_final_text()

bad = {k: v for k, v in texts.items() if "budget" not in (v or "")}
for k, v in texts.items():
    print(f"{k}: {v!r}")
if bad:
    sys.exit(f"not a budget stop answer: {bad}")
print(f"all {len(texts)} SDK calls parsed a stop answer")
