"""The report page: HTML sections and its own charts, from what the other stages wrote."""
