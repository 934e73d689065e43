"""Drives a running eino server with the official `openai` SDK and LangChain's ChatOpenAI,
unchanged, and fails (exit 1) on any mismatch. Usage: sdk_client.py BASE_URL"""

import os
import sys

import openai
from openai import OpenAI

base = sys.argv[1]
# The deploy test (scripts/deploy_test.sh) runs this against a container that needs a key.
key = os.environ.get("EINO_API_KEY", "unused-no-auth-on-loopback")
client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)

ids = {m.id for m in client.models.list()}
assert {"assistant", "smollm2", "minilm"} <= ids, ids

question = [{"role": "user", "content": "What is the capital of Germany?"}]
done = client.chat.completions.create(model="smollm2", messages=question, temperature=0, max_tokens=24)
answer = done.choices[0].message.content
assert "Berlin" in answer, answer
assert done.usage.completion_tokens > 0 and done.usage.prompt_tokens > 0, done.usage
assert done.choices[0].finish_reason in ("stop", "length"), done.choices[0].finish_reason

parts, usage, finish = [], None, None
stream = client.chat.completions.create(
    model="smollm2", messages=question, temperature=0, max_tokens=24,
    stream=True, stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            parts.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
assert "".join(parts) == answer, ("streamed and whole answers differ", "".join(parts), answer)
assert usage is not None and usage.completion_tokens == done.usage.completion_tokens, usage
assert finish == done.choices[0].finish_reason, finish

emb = client.embeddings.create(model="minilm", input=["hello world", "goodbye"])
assert len(emb.data) == 2 and len(emb.data[0].embedding) == 384, len(emb.data[0].embedding)

app = client.chat.completions.create(model="assistant", messages=question, max_tokens=8)
assert app.choices[0].message.role == "assistant"

try:
    client.chat.completions.create(model="no-such-model", messages=question)
    raise AssertionError("expected NotFoundError")
except openai.NotFoundError as e:
    assert "does not exist" in str(e), e
try:
    client.chat.completions.create(model="smollm2", messages=[])
    raise AssertionError("expected BadRequestError")
except openai.BadRequestError as e:
    assert "empty" in str(e), e

from langchain_openai import ChatOpenAI  # noqa: E402

llm = ChatOpenAI(base_url=base + "/v1", api_key=key, model="smollm2", temperature=0,
                 max_tokens=24, max_retries=0)
reply = llm.invoke("What is the capital of Germany?")
assert "Berlin" in reply.content, reply.content
streamed = "".join(c.content for c in llm.stream("What is the capital of Germany?"))
assert streamed == reply.content, (streamed, reply.content)

print("sdk ok")
