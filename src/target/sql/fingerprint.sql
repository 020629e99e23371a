-- The state of the table whose oid is $table that a new table in its place would not carry
-- over, as one md5: its grants, owner, settings and flags, its columns' names, grants and
-- settings, its comments, triggers, constraints and indexes, and every object that depends on
-- it or on its row type. The plan reads it (sql/identity.sql); the unit that reloads the table
-- into a new one reads it again, under lock, before it drops the old one: any difference means
-- something changed on the target in between.
(SELECT pg_catalog.md5(pg_catalog.concat_ws(' | ',
     c.relacl, c.relowner, c.reloptions, c.relrowsecurity, c.relforcerowsecurity,
     c.relreplident, c.relhassubclass, c.relispartition,
     (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', a.attnum, a.attname, a.attacl,
                                                        a.attstattarget, a.attoptions),
                                   ', ' ORDER BY a.attnum)
      FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0),
     (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', s.objsubid, s.description),
                                   ', ' ORDER BY s.objsubid)
      FROM pg_catalog.pg_description s
      WHERE s.objoid = c.oid AND s.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass),
     (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', g.tgname, g.tgenabled),
                                   ', ' ORDER BY g.tgname)
      FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid),
     (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', k.conname, k.convalidated),
                                   ', ' ORDER BY k.conname)
      FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid),
     (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', x.indexrelid, x.indisclustered),
                                   ', ' ORDER BY x.indexrelid)
      FROM pg_catalog.pg_index x WHERE x.indrelid = c.oid),
     (SELECT pg_catalog.string_agg(pg_catalog.concat_ws(' ', d.classid, d.objid, d.objsubid,
                                                        d.deptype),
                                   ', ' ORDER BY d.classid, d.objid, d.objsubid, d.deptype)
      FROM pg_catalog.pg_depend d
      WHERE (d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = c.oid)
         OR (d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass
             AND d.refobjid IN (c.reltype, (SELECT t.typarray FROM pg_catalog.pg_type t
                                            WHERE t.oid = c.reltype))))))
 FROM pg_catalog.pg_class c WHERE c.oid = $table)
