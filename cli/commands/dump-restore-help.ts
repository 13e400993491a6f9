/**
 * `shardvault --help` for the Xapiand-style dump and restore flags: its own module, so that
 * --help loads no store, no LMDB and no codec.
 */
export const DUMP_RESTORE_HELP = `Usage: shardvault [options]      (dump and restore one index, as Xapiand does)

  shardvault --dump-metadata=INDEX [--out=FILE]   write the index's metadata
  shardvault --dump-schema=INDEX   [--out=FILE]   write the index's schema
  shardvault --dump=INDEX          [--out=FILE]   write every document of the index
  shardvault --restore=INDEX       [--in=FILE]    restore a file written by one of the above

Each works on a local data directory (--data-dir, --nodes), or with --url=URL through a
running shardvault's API, wherever its nodes are (nothing local is opened):

  shardvault --dump=twitter --out=twitter.docs --url=http://cluster-a:8080
  shardvault --restore=twitter_copy --in=twitter.docs --url=http://cluster-b:8080

The files are the same either way: a dump made through the API restores locally, and the
other way round.

Without --out the dump goes to stdout; without --in the restore reads stdin.
--restore tells metadata, schema and documents apart by the file's header, and may name
another index than the one dumped (INDEX is created if it does not exist).

Restoring is safe: the whole file is read and checked first (header, format version, record
count, sha256 checksum in the trailer); a file with a bad header, a wrong checksum or a
truncated body is refused and nothing is changed. stdin is spooled to a temporary file for
this. Gzip-compressed dumps (backup shard objects) are read as well.

Documents are checked against the target index's schema as they are restored. A document
that does not fit (e.g. an _id "abc" where the schema says integer) is reported on stderr
with the index, its position in the file and its _id, and every other document is still
restored; the exit status is then 3. With --strict, any such document refuses the whole
restore instead (found while the file is checked, so nothing is written; exit status 1).

Options:
  --out=FILE          where a dump is written (written to FILE.tmp-*, then renamed)
  --in=FILE           the dump file to restore
  --strict            refuse the whole restore if any document does not fit the schema
                      (local only: the API's :restore has no strict mode)
  --url=URL           work through this API instead of a data directory; the API key is
                      $SHARDVAULT_API_KEY, else the first of $AUTHENTICATION_APIKEY_ALLOWED_KEYS
  --data-dir=DIR      the data directory (default: $DATA_DIR, else ./data)
  --nodes=A,B,C       the cluster's node names (default: $CLUSTER_NODES, else node-1,node-2,node-3)
  -q, --quiet         no progress bar and no summary line
  -h, --help          this help

Without --url, use the same DATA_DIR and CLUSTER_NODES (or flags) as the server. A progress
bar (documents, or bytes sent and received with --url) is drawn on stderr when it is a terminal.

Exit status: 0 done; 1 failed, nothing changed (also: the API refused, e.g. a wrong API key or
an unknown index, or could not be reached); 2 bad arguments or configuration; 3 restored, but
some documents were refused.
`;
