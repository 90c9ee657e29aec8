"""One module per resource; each public function is one use case."""
