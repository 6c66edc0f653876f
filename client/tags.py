"""A table's tags (`table.tags`): named versions to check out or restore, LanceDB's `Tags` / `AsyncTags`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vectorlane import _ops

if TYPE_CHECKING:
    from vectorlane.table import AsyncTable, Table


def _tag_list(tags: dict[str, int]) -> dict[str, dict[str, int]]:
    return {name: {"version": version} for name, version in tags.items()}


def _replace_tag(name: str, tag: str, version: int) -> _ops.Op[int]:
    yield from _ops.delete_tag(name, tag)
    return (yield from _ops.create_tag(name, tag, version))


class Tags:
    """`table.tags`: create, list, get_version, update and delete tags."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def list(self) -> dict[str, dict[str, int]]:
        """{tag: {"version": n}}, as LanceDB lists them."""
        return _tag_list(self._table._run(_ops.list_tags(self._table.name)))

    def get_version(self, tag: str) -> int:
        return self._table._run(_ops.tag_version(self._table.name, tag))

    def create(self, tag: str, version: int) -> int:
        return self._table._run(_ops.create_tag(self._table.name, tag, version))

    def update(self, tag: str, version: int) -> int:
        return self._table._run(_replace_tag(self._table.name, tag, version))

    def delete(self, tag: str) -> None:
        self._table._run(_ops.delete_tag(self._table.name, tag))


class AsyncTags:
    """An async table's `tags`, every call awaited."""

    def __init__(self, table: AsyncTable) -> None:
        self._table = table

    async def list(self) -> dict[str, dict[str, int]]:
        return _tag_list(await self._table._run(_ops.list_tags(self._table.name)))

    async def get_version(self, tag: str) -> int:
        return await self._table._run(_ops.tag_version(self._table.name, tag))

    async def create(self, tag: str, version: int) -> int:
        return await self._table._run(_ops.create_tag(self._table.name, tag, version))

    async def update(self, tag: str, version: int) -> int:
        return await self._table._run(_replace_tag(self._table.name, tag, version))

    async def delete(self, tag: str) -> None:
        await self._table._run(_ops.delete_tag(self._table.name, tag))


__all__ = ["AsyncTags", "Tags"]
