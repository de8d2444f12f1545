-- Each agent's equity at every cycle (snapshots of source `cycle:<id>`) read without the
-- tick and decision snapshots around them: the live return and alpha intervals read them
-- all once per completed cycle.
CREATE INDEX IF NOT EXISTS equity_snapshots_of_cycles ON equity_snapshots (source)
    INCLUDE (llm_id, equity) WHERE source LIKE 'cycle:%';
