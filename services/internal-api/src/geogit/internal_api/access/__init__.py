"""Who may do what: access levels (`levels`), the admin API's project checks (`projects`), Git
decisions with GitLab's refusal messages (`git`) and protected branches (`push_rules`)."""
