"""The ingest service's rules, free of I/O, one subject a module: `header` (what a valid
request header is), `content` (what the bytes are: media type and modality, sniffed while they
stream), `chunks` (where text is cut), `payloads` (of the events an ingest publishes), `storage`
(the periods and payloads of storage metering), `results` (what callers get back) and `errors`
(what the caller is told, by type)."""
