"""The manager process: the API server plus everything after it in the data flow
(controllers, scheduler), which run only in the elected leader (DESIGN §1)."""
