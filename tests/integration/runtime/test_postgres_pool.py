"""The shared pool skips asyncpg's session reset on release: what that relies on still holds."""

from __future__ import annotations

from hartonomous.postgres import create_pool


async def test_a_connection_released_inside_a_transaction_comes_back_rolled_back(
    pg_url: str,
) -> None:
    pool = await create_pool(pg_url, max_size=1)  # one connection: the next acquire reuses it
    try:
        await pool.execute("create table pool_probe (n int)")
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("insert into pool_probe values (1)")
            # Released without commit or rollback, as a cancelled handler would leave it.
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("select count(*) from pool_probe") == 0
    finally:
        await pool.close()
