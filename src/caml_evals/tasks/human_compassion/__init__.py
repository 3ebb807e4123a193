"""Human compassion: this project's rubric-judged set of everyday requests affecting people."""
