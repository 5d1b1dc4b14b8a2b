"""From run records to tables, statistics and figures."""
