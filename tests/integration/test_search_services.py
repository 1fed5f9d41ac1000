"""Real Elasticsearch and OpenSearch nodes from scripts/services/{elasticsearch,opensearch}.

Each node is started through its script (a second ``start`` must be a no-op that still prints
the URL), then used with the official Python client: a composable index template with a
``geo_point`` mapping and an alias, bulk indexing, refresh, searches, a ``terms`` aggregation and
a ``geo_distance`` filter. A node the test started is stopped afterwards; one that was already
running is left alone.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from opensearchpy import OpenSearch
from support import SERVICE_DEADLINE_S, service

pytestmark = pytest.mark.integration

NYC = {"lat": 40.7128, "lon": -74.0060}
LONDON = {"lat": 51.5074, "lon": -0.1278}
DOCS: list[dict[str, Any]] = [
    {"transaction_id": "t1", "card_id": "c-1", "merchant_category": "grocery", "amount": 20.0, "location": NYC},
    {"transaction_id": "t2", "card_id": "c-1", "merchant_category": "grocery", "amount": 35.5, "location": NYC},
    {"transaction_id": "t3", "card_id": "c-1", "merchant_category": "electronics", "amount": 1999.0, "location": LONDON},
    {"transaction_id": "t4", "card_id": "c-2", "merchant_category": "travel", "amount": 640.0, "location": LONDON},
    {"transaction_id": "t5", "card_id": "c-2", "merchant_category": "grocery", "amount": 12.25, "location": {"lat": 40.73, "lon": -73.99}},
]
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _running(name: str) -> bool:
    try:
        service(name, "status")
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="module", params=["elasticsearch", "opensearch"])
def node(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(script name, URL) of a running node; stopped afterwards only if this fixture started it."""
    name = request.param
    started_here = not _running(name)
    url = service(name, "start")
    try:
        yield name, url
    finally:
        if started_here:
            service(name, "stop")


def client_for(name: str, url: str) -> Elasticsearch | OpenSearch:
    if name == "elasticsearch":
        return Elasticsearch(url, request_timeout=30)
    return OpenSearch(hosts=[url], timeout=30)


def api(client: Elasticsearch | OpenSearch, method: str, body: Any = None, **params: Any) -> Any:
    """Call ``client.<method>``: opensearch-py takes a request ``body``, elasticsearch 9 its fields as keywords."""
    fn = operator.attrgetter(method)(client)
    if body is None:
        return fn(**params)
    if isinstance(client, OpenSearch):
        return fn(body=body, **params)
    if method == "bulk":
        return fn(operations=body, **params)
    return fn(**body, **params)


def test_start_is_idempotent_and_status_answers(node: tuple[str, str]) -> None:
    name, url = node
    assert url.startswith("http://127.0.0.1:")
    assert service(name, "start", timeout=SERVICE_DEADLINE_S) == url  # already running: a no-op, same URL
    assert service(name, "status", timeout=SERVICE_DEADLINE_S) == url  # exit 0: running, health yellow or green
    assert service(name, "bootstrap", timeout=SERVICE_DEADLINE_S) == url
    # No timeout="30s" here: opensearch-py takes `timeout` as its own request timeout (urllib3
    # then fails: "Timeout value connect was 30s"); the server waits 30 s by default.
    health = client_for(name, url).cluster.health(wait_for_status="yellow")
    assert health["status"] in ("green", "yellow") and health["number_of_nodes"] == 1


def test_index_search_and_aggregate_with_the_official_client(node: tuple[str, str]) -> None:
    name, url = node
    client = client_for(name, url)
    prefix = f"fraudstream-test-{uuid.uuid4().hex[:8]}"
    index, alias = f"{prefix}-2026.01", f"{prefix}-all"
    template = {
        "index_patterns": [f"{prefix}-*"],
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "properties": {
                    "transaction_id": {"type": "keyword"},
                    "card_id": {"type": "keyword"},
                    "merchant_category": {"type": "keyword"},
                    "amount": {"type": "double"},
                    "timestamp": {"type": "date", "format": "epoch_millis"},
                    "location": {"type": "geo_point"},
                }
            },
            "aliases": {alias: {}},
        },
    }
    api(client, "indices.put_index_template", template, name=prefix)
    try:
        ops: list[dict[str, Any]] = []
        for i, doc in enumerate(DOCS):
            ops += [{"index": {"_index": index, "_id": doc["transaction_id"]}}, {**doc, "timestamp": T0 + i * 60_000}]
        result = api(client, "bulk", ops, refresh="true")
        assert not result["errors"], result

        # The composable template applied: explicit mapping, geo_point, the alias.
        props = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
        assert props["location"]["type"] == "geo_point"
        assert props["merchant_category"]["type"] == "keyword"
        assert alias in client.indices.get_alias(index=index)[index]["aliases"]

        def search(**body: Any) -> Any:
            return api(client, "search", body, index=alias)

        hits = search(query={"term": {"card_id": "c-1"}}, sort=[{"timestamp": "asc"}], size=10)["hits"]
        assert hits["total"]["value"] == 3
        assert [h["_id"] for h in hits["hits"]] == ["t1", "t2", "t3"]

        aggs = search(size=0, aggs={"by_cat": {"terms": {"field": "merchant_category"}},
                                    "total": {"sum": {"field": "amount"}}})["aggregations"]
        assert {b["key"]: b["doc_count"] for b in aggs["by_cat"]["buckets"]} == {"grocery": 3, "electronics": 1, "travel": 1}
        assert aggs["total"]["value"] == pytest.approx(sum(d["amount"] for d in DOCS))

        near = search(query={"bool": {"filter": {"geo_distance": {"distance": "50km", "location": NYC}}}}, size=10)
        assert sorted(h["_id"] for h in near["hits"]["hits"]) == ["t1", "t2", "t5"]
        big = search(query={"range": {"amount": {"gte": 500}}}, size=10)
        assert sorted(h["_id"] for h in big["hits"]["hits"]) == ["t3", "t4"]
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.indices.delete_index_template(name=prefix)
