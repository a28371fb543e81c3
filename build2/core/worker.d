build2/core/worker.o: src/core/worker.c src/core/worker.h
src/core/worker.h:
