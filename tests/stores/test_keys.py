"""Keys: a non-str key is a TypeError everywhere; hostile keys are stored as digests."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from resilient import SlidingWindow, TokenBucket
from resilient.stores import MemoryStore, RedisStore
from resilient.stores._keys import storage_key
from resilient.testing import FakeClock

HEX64 = "0123456789abcdef" * 4


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# -- the rule -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["", "a", "user:42", "10.0.0.1", "[::1]:443", "x" * 64, "!~|" + "A" * 61, HEX64.upper()]
)
def test_short_printable_keys_are_stored_verbatim(key: str) -> None:
    assert storage_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "x" * 65,
        "user:{42}",
        "a}b",
        "with space",
        "tab\there",
        "new\nline",
        "caf\u00e9",
        "\x7f",
        "\x00",
        "k" * 100_000,
    ],
)
def test_long_or_unprintable_keys_are_stored_as_a_sha256_digest(key: str) -> None:
    assert storage_key(key) == digest(key)
    assert len(storage_key(key)) == 64


def test_a_key_that_looks_like_a_digest_is_digested_too() -> None:
    # Else a client could send another key's digest and share that key's state.
    victim = "k" * 100
    assert storage_key(digest(victim)) != storage_key(victim)
    assert storage_key(HEX64) == digest(HEX64)


def test_lone_surrogates_are_digested_not_an_error() -> None:
    expected = hashlib.sha256("\udcff".encode("utf-8", "surrogatepass")).hexdigest()
    assert storage_key("\udcff") == expected


def test_a_str_subclass_is_stored_as_a_plain_str() -> None:
    class Key(str):
        pass

    stored = storage_key(Key("user:1"))
    assert type(stored) is str
    assert stored == "user:1"


@pytest.mark.parametrize("key", [None, 0, 42, b"user", 1.5, ("a",)])
def test_a_non_str_key_is_a_type_error_naming_key(key: object) -> None:
    with pytest.raises(TypeError, match="key must be a str"):
        storage_key(key)  # type: ignore[arg-type]


# -- every entry point of every limiter and store -------------------------------------------------

LIMITERS = [
    lambda **kw: TokenBucket(rate=1.0, capacity=2, **kw),
    lambda **kw: SlidingWindow(limit=2, window=1.0, **kw),
    lambda **kw: SlidingWindow(limit=2, window=1.0, precise=True, **kw),
]
BAD_KEYS = [None, 0, 42, b"k"]


def _assert_nothing_taken(limiter: Any) -> None:
    assert limiter.try_acquire().remaining == 1
    assert limiter.try_acquire("42").remaining == 1


@pytest.mark.usefixtures("gcra_impl")
@pytest.mark.parametrize("make", LIMITERS)
@pytest.mark.parametrize("key", BAD_KEYS)
def test_memory_limiters_refuse_non_str_keys_at_every_sync_entry_point(
    make: Any, key: object
) -> None:
    limiter = make(clock=FakeClock())
    for call in (
        lambda: limiter.try_acquire(key),
        lambda: limiter.try_acquire(key, 2),
        lambda: limiter.try_acquire(key=key),
        lambda: limiter.acquire(key),
        lambda: limiter.acquire(key, max_wait=None),
        lambda: limiter.guard(key),
    ):
        with pytest.raises(TypeError, match="key must be a str"):
            call()
    _assert_nothing_taken(limiter)


@pytest.mark.usefixtures("gcra_impl")
@pytest.mark.parametrize("make", LIMITERS)
@pytest.mark.parametrize("key", BAD_KEYS)
async def test_memory_limiters_refuse_non_str_keys_at_every_async_entry_point(
    make: Any, key: object
) -> None:
    limiter = make(clock=FakeClock())
    with pytest.raises(TypeError, match="key must be a str"):
        await limiter.atry_acquire(key)
    with pytest.raises(TypeError, match="key must be a str"):
        await limiter.aacquire(key, max_wait=None)
    _assert_nothing_taken(limiter)


@pytest.mark.parametrize("make", LIMITERS)
@pytest.mark.parametrize("key", BAD_KEYS)
def test_redis_limiters_refuse_non_str_keys(redis_client: Any, make: Any, key: object) -> None:
    limiter = make(store=RedisStore(redis_client), name=f"bad-keys-{id(key)}")
    redis_client.flushdb()
    for call in (
        lambda: limiter.try_acquire(key),
        lambda: limiter.try_acquire(key, 2),
        lambda: limiter.acquire(key, max_wait=None),
    ):
        with pytest.raises(TypeError, match="key must be a str"):
            call()
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("make", LIMITERS)
async def test_redis_limiters_refuse_non_str_keys_async(redis_client: Any, make: Any) -> None:
    limiter = make(store=RedisStore(redis_client), name="bad-keys-async")
    with pytest.raises(TypeError, match="key must be a str"):
        await limiter.atry_acquire(None)
    with pytest.raises(TypeError, match="key must be a str"):
        await limiter.aacquire(42)


@pytest.mark.usefixtures("gcra_impl")
def test_zero_and_none_no_longer_charge_the_global_key() -> None:
    limiter = TokenBucket(rate=1.0, capacity=1, clock=FakeClock())
    for key in (None, 0):
        with pytest.raises(TypeError):
            limiter.try_acquire(key)  # type: ignore[arg-type]
    assert limiter.try_acquire()  # the global key is still full


# -- hostile keys in the memory store --------------------------------------------------------------


@pytest.mark.usefixtures("gcra_impl")
@pytest.mark.parametrize("make", LIMITERS)
def test_memory_store_keeps_a_digest_not_a_100_kb_key(make: Any) -> None:
    store = MemoryStore()
    limiter = make(store=store, clock=FakeClock())
    huge = "h" * 100_000
    assert limiter.try_acquire(huge)
    (stored,) = [key for _, key in store._data]
    assert stored == digest(huge)
    # The same huge key is the same limit; another one is another limit.
    assert limiter.try_acquire(huge).remaining == 0
    assert not limiter.try_acquire(huge)
    assert limiter.try_acquire(huge + "!")


@pytest.mark.usefixtures("gcra_impl")
@pytest.mark.parametrize("make", LIMITERS)
def test_memory_store_keeps_short_keys_verbatim(make: Any) -> None:
    store = MemoryStore()
    limiter = make(store=store, clock=FakeClock())
    limiter.try_acquire("user:42")
    assert [key for _, key in store._data] == ["user:42"]


@pytest.mark.usefixtures("gcra_impl")
def test_distinct_long_keys_keep_distinct_limits_in_memory() -> None:
    limiter = TokenBucket(rate=1.0, capacity=1, clock=FakeClock())
    keys = [f"{i}:" + "x" * 200 for i in range(200)]
    assert all(limiter.try_acquire(key) for key in keys)
    assert not any(limiter.try_acquire(key) for key in keys)


# -- hostile keys in Redis ----------------------------------------------------------------------


def _written_keys(redis_client: Any) -> list[str]:
    return sorted(key.decode() for key in redis_client.keys("*"))


@pytest.mark.parametrize("make", LIMITERS)
def test_redis_keeps_a_digest_not_a_100_kb_key(redis_client: Any, make: Any) -> None:
    redis_client.flushdb()
    limiter = make(store=RedisStore(redis_client, prefix="app"), name="api")
    huge = "h" * 100_000
    assert limiter.try_acquire(huge)
    (written,) = _written_keys(redis_client)
    assert written == f"app:{{api:{digest(huge)}}}:{limiter.algorithm}"
    assert limiter.try_acquire(huge).remaining == 0


@pytest.mark.parametrize("make", LIMITERS)
async def test_redis_keeps_a_digest_not_a_100_kb_key_async(redis_client: Any, make: Any) -> None:
    redis_client.flushdb()
    limiter = make(store=RedisStore(redis_client, prefix="app"), name="api")
    huge = "h" * 100_000
    assert await limiter.atry_acquire(huge)
    assert _written_keys(redis_client) == [f"app:{{api:{digest(huge)}}}:{limiter.algorithm}"]


def test_a_brace_in_a_key_cannot_move_it_to_another_cluster_slot(redis_client: Any) -> None:
    redis_client.flushdb()
    store = RedisStore(redis_client, prefix="app")
    limiter = TokenBucket(rate=1.0, capacity=1, store=store, name="api")
    hostile = "user}:{victim"
    limiter.try_acquire(hostile)
    (written,) = _written_keys(redis_client)
    # The whole "<name>:<stored key>" is the hash tag: the slot is the one the key's digest
    # decides, not one the client picked by closing the tag early.
    tag = f"api:{digest(hostile)}"
    assert written == f"app:{{{tag}}}:gcra"
    assert key_slot(written.encode()) == key_slot(tag.encode())
    assert key_slot(written.encode()) != key_slot(b"api:user")


def test_distinct_long_keys_keep_distinct_limits_in_redis(redis_client: Any) -> None:
    redis_client.flushdb()
    limiter = SlidingWindow(limit=1, window=60.0, store=RedisStore(redis_client), name="long")
    keys = [f"{i}:" + "x" * 200 for i in range(50)]
    assert all(limiter.try_acquire(key) for key in keys)
    assert not any(limiter.try_acquire(key) for key in keys)
    assert len(set(_written_keys(redis_client))) == 50


def test_redis_store_builds_keys_through_storage_key() -> None:
    store = RedisStore(redis.Redis(host="127.0.0.1", port=1), prefix="app")
    assert store._key("payments", "user:42", "state") == "app:{payments:user:42}:state"
    assert store._key("payments", "a b", "state") == f"app:{{payments:{digest('a b')}}}:state"
