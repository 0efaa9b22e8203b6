from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import pytest

import resilient
from resilient import Pipeline, Policy

T = TypeVar("T")


class Recorder(Policy):
    """A minimal policy that records the order in which policies wrap a call."""

    __slots__ = ("log", "name")

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        self.log.append(f"enter {self.name}")
        try:
            return fn(*args, **kwargs)
        finally:
            self.log.append(f"exit {self.name}")

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        self.log.append(f"enter {self.name}")
        await anyio.lowlevel.checkpoint()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.log.append(f"exit {self.name}")


def test_decorator_keeps_metadata_and_signature() -> None:
    policy = Recorder("a", [])

    @policy
    def add(x: int, y: int = 2) -> int:
        """Add two numbers."""
        return x + y

    assert add(1) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert str(inspect.signature(add)) == "(x: 'int', y: 'int' = 2) -> 'int'"
    assert add.__wrapped__ is not None  # type: ignore[attr-defined]


async def test_decorator_on_async_function_returns_coroutine_function() -> None:
    log: list[str] = []

    @Recorder("a", log)
    async def double(x: int) -> int:
        return 2 * x

    assert inspect.iscoroutinefunction(double)
    assert await double(21) == 42
    assert log == ["enter a", "exit a"]


async def test_decorator_on_async_method_binds_self() -> None:
    log: list[str] = []

    class Service:
        factor = 3

        @Recorder("a", log)
        async def scale(self, x: int) -> int:
            return self.factor * x

        @Recorder("b", log)
        def scale_sync(self, x: int) -> int:
            return self.factor * x

    assert await Service().scale(2) == 6
    assert Service().scale_sync(2) == 6
    assert log == ["enter a", "exit a", "enter b", "exit b"]


async def test_partial_of_async_function_is_wrapped_as_async() -> None:
    async def mul(x: int, y: int) -> int:
        return x * y

    wrapped = Recorder("a", [])(functools.partial(mul, 3))
    assert inspect.iscoroutinefunction(wrapped)
    assert await wrapped(4) == 12


def test_decorating_a_generator_function_is_a_type_error() -> None:
    def gen() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        Recorder("a", [])(gen)


def test_decorating_a_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="callables"):
        Recorder("a", [])(42)  # type: ignore[call-overload]


def test_pipeline_first_policy_is_outermost() -> None:
    log: list[str] = []
    pipeline = Pipeline(Recorder("outer", log), Recorder("middle", log), Recorder("inner", log))

    def work(x: int, *, y: int) -> int:
        log.append("work")
        return x + y

    assert pipeline.call(work, 1, y=2) == 3
    assert log == [
        "enter outer",
        "enter middle",
        "enter inner",
        "work",
        "exit inner",
        "exit middle",
        "exit outer",
    ]


async def test_pipeline_acall_nests_in_the_same_order() -> None:
    log: list[str] = []
    pipeline = Pipeline(Recorder("outer", log), Recorder("inner", log))

    async def work(x: int) -> int:
        log.append("work")
        return x

    assert await pipeline.acall(work, 7) == 7
    assert log == ["enter outer", "enter inner", "work", "exit inner", "exit outer"]


def test_pipeline_is_a_policy_and_nests() -> None:
    log: list[str] = []
    inner = Pipeline(Recorder("b", log), Recorder("c", log))
    outer = Pipeline(Recorder("a", log), inner)

    @outer
    def work() -> str:
        log.append("work")
        return "done"

    assert work() == "done"
    assert [line for line in log if line.startswith("enter")] == ["enter a", "enter b", "enter c"]


def test_empty_pipeline_just_calls() -> None:
    pipeline = Pipeline()
    assert len(pipeline) == 0
    assert pipeline.call(lambda x: x + 1, 1) == 2


async def test_empty_pipeline_acall_just_awaits() -> None:
    async def one() -> int:
        return 1

    assert await Pipeline().acall(one) == 1


def test_pipeline_rejects_non_policies_naming_the_position() -> None:
    with pytest.raises(TypeError, match=r"policies\[1\]"):
        Pipeline(Recorder("a", []), object())  # type: ignore[arg-type]


def test_pipeline_propagates_exceptions_unchanged() -> None:
    error = ValueError("boom")

    def fail() -> None:
        raise error

    with pytest.raises(ValueError, match="boom") as info:
        Pipeline(Recorder("a", []), Recorder("b", [])).call(fail)
    assert info.value is error


def test_policy_built_at_import_time_works_on_both_async_backends() -> None:
    # Built before any event loop exists, used afterwards under asyncio and trio.
    log: list[str] = []
    pipeline = Pipeline(Recorder("a", log))

    async def work() -> int:
        await anyio.sleep(0)
        return 5

    for backend in ("asyncio", "trio"):
        assert anyio.run(pipeline.acall, work, backend=backend) == 5
    assert log == ["enter a", "exit a"] * 2


def test_pipeline_is_thread_safe_to_share() -> None:
    pipeline = Pipeline(Recorder("a", []))
    results: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(200):
            value = pipeline.call(lambda a, b: a * b, n, i)
            with lock:
                results.append(value)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(n * i for n in range(8) for i in range(200))


def test_base_policy_methods_are_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Policy().call(lambda: None)


def test_pipeline_repr_lists_policies() -> None:
    log: list[str] = []
    assert repr(Pipeline()) == "Pipeline()"
    assert repr(Pipeline(Recorder("a", log), name="payments")).endswith("name='payments')")
    assert resilient.Pipeline is Pipeline


async def test_decorating_static_and_class_methods_guards_the_function_inside() -> None:
    log: list[str] = []

    class Service:
        factor = 3

        @Recorder("static", log)  # type: ignore[arg-type]
        @staticmethod
        async def double(x: int) -> int:
            return 2 * x

        @Recorder("class", log)  # type: ignore[arg-type]
        @classmethod
        def scale(cls, x: int) -> int:
            return cls.factor * x

    assert await Service.double(2) == 4
    assert await Service().double(3) == 6
    assert Service.scale(2) == 6
    assert Service().scale(1) == 3
    assert log == ["enter static", "exit static"] * 2 + ["enter class", "exit class"] * 2
