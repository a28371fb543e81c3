build2/delivery/dsn.o: src/delivery/dsn.c src/delivery/dsn.h \
 src/core/buf.h src/core/str.h src/store/store.h
src/delivery/dsn.h:
src/core/buf.h:
src/core/str.h:
src/store/store.h:
