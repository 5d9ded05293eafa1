"""The article's experiment and its products: pseudo-colour composites of dual-pol SAR
(:mod:`.composite`, also ``sar2opt composite``), the experiment runner (:mod:`.run`) and its
report figures and tables (:mod:`.report`)."""
