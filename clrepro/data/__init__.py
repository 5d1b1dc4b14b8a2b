"""Raw datasets (sources), benchmark construction and the prepared-tensor cache."""
