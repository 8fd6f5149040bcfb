@testable import FleetStore
import Testing

/// The SQL text the PostgreSQL engine sends: `?` numbered outside quotes and comments, and
/// migration scripts split into statements without cutting a quoted `;` or a `$$` body.
@Suite struct PlaceholderTests {
    @Test func questionMarksOutsideQuotesAndCommentsBecomeNumberedParameters() {
        #expect(Placeholders.numbered("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)")
        #expect(Placeholders.numbered("SELECT '?', \"a?\" FROM t WHERE x = ?") == "SELECT '?', \"a?\" FROM t WHERE x = $1")
        #expect(Placeholders.numbered("SELECT 1 -- why?\nWHERE y = ?") == "SELECT 1 -- why?\nWHERE y = $1")
        #expect(Placeholders.numbered("SELECT 'it''s ?' , ?") == "SELECT 'it''s ?' , $1")
        // Block comments, which nest in PostgreSQL; an operator's `-` or `/` is still code.
        #expect(Placeholders.numbered("SELECT /* why? */ ? - ? / ?") == "SELECT /* why? */ $1 - $2 / $3")
        #expect(
            Placeholders.numbered("SELECT /* a /* nested? */ still? */ ?, 1/2") == "SELECT /* a /* nested? */ still? */ $1, 1/2")
        #expect(Placeholders.numbered("SELECT $$?$$, ?") == "SELECT $$?$$, $1")
    }

    /// What tells a statement's main verb and its words looks past block comments too.
    @Test func wordsInBlockCommentsAreNotCode() {
        #expect(Placeholders.mainVerb("WITH a AS (SELECT 1) /* INSERT */ SELECT * FROM a") == "SELECT")
        #expect(!Placeholders.hasWord("RETURNING", in: "UPDATE t SET x = 1 /* RETURNING x */"))
        #expect(!Placeholders.hasCode(";", in: "INSERT INTO t VALUES (1) /* ; */"))
        #expect(Placeholders.hasCode(";", in: "INSERT INTO t VALUES (1); /* x */"))
    }

    @Test func scriptsSplitAtSemicolonsInCodeOnly() {
        let script = """
            -- a comment; with a semicolon
            CREATE TABLE a (x TEXT DEFAULT ';');
            CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('c', 'x;y');
              RETURN NEW;
            END;
            $$;
            /* a block comment; with a semicolon
               /* nested; */ still; */
            CREATE INDEX a_x ON a (x);
            -- trailing comment only
            /* and a trailing block; */
            """
        let statements = Placeholders.statements(script)
        #expect(statements.count == 3, "\(statements)")
        #expect(statements[0].contains("DEFAULT ';'"))
        #expect(statements[1].contains("RETURN NEW;") && statements[1].hasSuffix("$$"))
        #expect(statements[2].contains("CREATE INDEX a_x"))
    }
}
