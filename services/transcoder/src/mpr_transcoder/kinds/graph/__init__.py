"""Job graphs: a job that runs as child jobs on every transcoder, stitched once by the transcoder that
completes its last child. The generic part (plan kept once, fan-out, the checks a child passes, fan-in
under the graph's lock, failure, cancel cascade, discard): :mod:`.runner`, with the plan's store
(:mod:`.store`) and the lock (:mod:`.lock`). Its users: a package (:mod:`..package.chord`) and a chunked
transcode (:mod:`..transcode.graph`)."""
