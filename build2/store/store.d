build2/store/store.o: src/store/store.c src/store/store.h \
 src/store/store_msg.h src/store/store_util.h src/core/str.h
src/store/store.h:
src/store/store_msg.h:
src/store/store_util.h:
src/core/str.h:
