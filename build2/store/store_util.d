build2/store/store_util.o: src/store/store_util.c src/store/store_util.h \
 src/core/str.h src/store/store.h
src/store/store_util.h:
src/core/str.h:
src/store/store.h:
