"""How good a model is: on labelled clips (:mod:`.clips`), on labelled streams (:mod:`.streams`),
and which detector settings suit it (:mod:`.tuning`)."""
