"""The ML library the worker runs: encoders, in-domain SSL, embedding store, heads, query
strategies and zero-shot suggestions. Arrays and file paths in, arrays out; no Django imports."""
