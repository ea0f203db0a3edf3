"""minray.tune: hyperparameter search on remote trials (issue "Libraries II")."""
