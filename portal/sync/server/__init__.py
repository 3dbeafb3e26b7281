"""The central server's side of sync, in the order a change travels: a device enrols
(enrolment), pushes its changes (push), each applied as its author (apply) into the change log
(capture), and pulls its scope (pull); files travel beside (files). Routes on top."""
