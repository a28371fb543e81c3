build2/net/line_session.o: src/net/line_session.c src/net/line_session.h \
 src/core/log.h src/net/server.h src/core/worker.h src/net/zfilter.h
src/net/line_session.h:
src/core/log.h:
src/net/server.h:
src/core/worker.h:
src/net/zfilter.h:
