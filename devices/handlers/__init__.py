"""The alarm handlers run on each batch of new fixes (chain, build_chain in .build) and the
sweeper for what time alone decides (.sweep)."""
