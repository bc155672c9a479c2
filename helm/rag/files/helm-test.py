# The `helm test` pod's script (stdlib only; it runs in the service's own image): the Service answers
# /ready with 200 and /answer with an answer or an abstention. Any HTTP error raises, so the pod fails.
import json
import os
import urllib.request

url = os.environ["RAG_TEST_URL"]
headers = {"content-type": "application/json"}
if os.environ.get("RAG_API_KEY"):
    headers["x-api-key"] = os.environ["RAG_API_KEY"]

with urllib.request.urlopen(f"{url}/ready", timeout=10) as response:
    ready = json.load(response)
assert ready["status"] == "ready", ready

question = json.dumps({"question": os.environ["RAG_TEST_QUESTION"]}).encode()
request = urllib.request.Request(f"{url}/answer", data=question, headers=headers, method="POST")
with urllib.request.urlopen(request, timeout=60) as response:
    answer = json.load(response)
assert answer["abstained"] or answer["evidence"], answer
print(
    json.dumps(
        {
            "corpus_id": ready.get("corpus_id"),
            "abstained": answer["abstained"],
            "evidence": len(answer["evidence"]),
            "request_id": answer["request_id"],
        }
    )
)
