"""A desktop copy's side of sync, in the order a change travels: an edit waits in the outbox
(capture), goes to the server (outbox), and the scope comes back (pull); client speaks HTTP, the
runner syncs in the background. Routes on top."""
