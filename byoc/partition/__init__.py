"""The pattern language and the partitioner that assigns subgraphs to plugins."""
