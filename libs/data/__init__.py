"""minray.data: streaming datasets over tasks and actors (issue "Libraries I")."""
