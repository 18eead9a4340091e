// metadata client tests: being written
