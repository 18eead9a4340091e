// metadata client: being written
