"""Running the whole anonchat stack as local processes: the run command and the
end-to-end tests start it the same way."""
