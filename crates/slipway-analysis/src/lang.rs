//! The languages read by tree-sitter, and what one parse of a file yields: its functions
//! (complexity, length, body) and its test cases. The walk is iterative: a hostile file's
//! depth never reaches the stack.

use std::ops::ControlFlow;
use std::time::Instant;
use tree_sitter::{Node, Parser, Tree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Rust,
    Go,
}

impl Language {
    /// By the file's extension; `None` for a file no grammar reads.
    pub fn of(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.')?.1;
        Some(match ext {
            "py" | "pyi" => Self::Python,
            "js" | "mjs" | "cjs" | "jsx" => Self::JavaScript,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "rs" => Self::Rust,
            "go" => Self::Go,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::JavaScript => "javascript",
            Self::TypeScript => "typescript",
            Self::Tsx => "tsx",
            Self::Rust => "rust",
            Self::Go => "go",
        }
    }

    fn grammar(self) -> tree_sitter::Language {
        match self {
            Self::Python => tree_sitter_python::LANGUAGE.into(),
            Self::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Self::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Self::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Self::Rust => tree_sitter_rust::LANGUAGE.into(),
            Self::Go => tree_sitter_go::LANGUAGE.into(),
        }
    }

    fn is_function(self, kind: &str) -> bool {
        match self {
            Self::Python => kind == "function_definition",
            Self::JavaScript | Self::TypeScript | Self::Tsx => matches!(
                kind,
                "function_declaration"
                    | "function_expression"
                    | "function"
                    | "generator_function_declaration"
                    | "generator_function"
                    | "arrow_function"
                    | "method_definition"
            ),
            Self::Rust => kind == "function_item",
            Self::Go => matches!(
                kind,
                "function_declaration" | "method_declaration" | "func_literal"
            ),
        }
    }

    /// Named scopes that are not functions: they qualify the names of what they hold.
    fn is_scope(self, kind: &str) -> bool {
        match self {
            Self::Python => kind == "class_definition",
            Self::JavaScript | Self::TypeScript | Self::Tsx => {
                matches!(
                    kind,
                    "class_declaration" | "class" | "abstract_class_declaration"
                )
            }
            Self::Rust => matches!(kind, "impl_item" | "trait_item" | "mod_item"),
            Self::Go => false,
        }
    }

    /// What a node adds to its function's cyclomatic complexity.
    fn decisions(self, node: Node) -> u32 {
        let kind = node.kind();
        let branch = match self {
            Self::Python => matches!(
                kind,
                "if_statement"
                    | "elif_clause"
                    | "for_statement"
                    | "while_statement"
                    | "except_clause"
                    | "conditional_expression"
                    | "case_clause"
                    | "for_in_clause"
                    | "if_clause"
            ),
            Self::JavaScript | Self::TypeScript | Self::Tsx => matches!(
                kind,
                "if_statement"
                    | "for_statement"
                    | "for_in_statement"
                    | "while_statement"
                    | "do_statement"
                    | "switch_case"
                    | "catch_clause"
                    | "ternary_expression"
            ),
            Self::Rust => matches!(
                kind,
                "if_expression" | "while_expression" | "for_expression" | "match_arm"
            ),
            Self::Go => matches!(
                kind,
                "if_statement"
                    | "for_statement"
                    | "expression_case"
                    | "type_case"
                    | "communication_case"
            ),
        };
        if branch {
            return 1;
        }
        if matches!(kind, "binary_expression" | "boolean_operator") {
            let operator = node.child_by_field_name("operator").map(|o| o.kind());
            if matches!(operator, Some("&&" | "||" | "??" | "and" | "or")) {
                return 1;
            }
        }
        0
    }
}

/// One function of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Qualified by the scopes and functions around it (`Class.method`), unique in its file.
    pub key: String,
    pub line: u32,
    pub lines: u32,
    pub complexity: u32,
    /// Its text, to tell an unchanged function from a changed one.
    pub text: String,
    pub is_test: bool,
}

/// One test case: a test function, or a JavaScript `it("…", …)`/`test("…", …)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    pub line: u32,
    /// The body with whitespace collapsed: a moved test is found by it.
    pub body: String,
}

/// What a parse yields.
#[derive(Debug, Default)]
pub struct Outline {
    pub functions: Vec<Function>,
    pub tests: Vec<TestCase>,
}

/// Why a file was not outlined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unparsed {
    /// The grammar found syntax errors (at this line).
    SyntaxError(u32),
    /// Parsing passed the analysis's deadline.
    TimedOut,
}

/// Parses `text` and outlines it; parsing stops at `deadline`.
pub fn outline(
    language: Language,
    path: &str,
    text: &str,
    deadline: Instant,
) -> Result<Outline, Unparsed> {
    let tree = parse(language, text, deadline)?;
    let root = tree.root_node();
    if root.has_error() {
        return Err(Unparsed::SyntaxError(first_error_line(root)));
    }
    Ok(walk(language, path, text, &tree))
}

fn parse(language: Language, text: &str, deadline: Instant) -> Result<Tree, Unparsed> {
    let mut parser = Parser::new();
    parser
        .set_language(&language.grammar())
        .expect("the grammars are built against this tree-sitter");
    let bytes = text.as_bytes();
    let mut read = |offset: usize, _| &bytes[offset.min(bytes.len())..];
    let mut progress = |_: &tree_sitter::ParseState| {
        if Instant::now() >= deadline {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let options = tree_sitter::ParseOptions::new().progress_callback(&mut progress);
    parser
        .parse_with_options(&mut read, None, Some(options))
        .ok_or(Unparsed::TimedOut)
}

fn first_error_line(root: Node) -> u32 {
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            return node.start_position().row as u32 + 1;
        }
        // Descend only where an error lies.
        let mut found = false;
        if cursor.goto_first_child() {
            loop {
                if cursor.node().has_error() {
                    found = true;
                    break;
                }
                if !cursor.goto_next_sibling() {
                    break;
                }
            }
        }
        if !found {
            return cursor.node().start_position().row as u32 + 1;
        }
    }
}

/// A scope open during the walk: a function (its index) or a named container.
struct Open {
    depth: usize,
    name: String,
    function: Option<usize>,
}

fn walk(language: Language, path: &str, text: &str, tree: &Tree) -> Outline {
    let mut outline = Outline::default();
    let mut open: Vec<Open> = Vec::new();
    let mut seen = std::collections::HashMap::<String, u32>::new();
    let mut cursor = tree.walk();
    let mut depth = 0usize;
    let test_file = crate::paths::is_test_file(path);
    loop {
        let node = cursor.node();
        let kind = node.kind();
        if language.is_function(kind) || language.is_scope(kind) {
            let name = name_of(language, node, text);
            let qualified = open
                .iter()
                .map(|o| o.name.as_str())
                .chain([name.as_str()])
                .collect::<Vec<_>>()
                .join(".");
            let function = language.is_function(kind).then(|| {
                let count = seen.entry(qualified.clone()).or_default();
                *count += 1;
                let key = match *count {
                    1 => qualified.clone(),
                    n => format!("{qualified}#{n}"),
                };
                let is_test = is_test_function(language, node, &name, text, test_file, &open);
                let body = &text[node.byte_range()];
                if is_test {
                    // The body without the name: a renamed test is found by it.
                    let inner = node.child_by_field_name("body").unwrap_or(node);
                    outline.tests.push(TestCase {
                        name: key.clone(),
                        line: line_of(node),
                        body: collapse(&text[inner.byte_range()]),
                    });
                }
                outline.functions.push(Function {
                    key,
                    line: line_of(node),
                    lines: (node.end_position().row - node.start_position().row) as u32 + 1,
                    complexity: 1,
                    text: body.to_owned(),
                    is_test,
                });
                outline.functions.len() - 1
            });
            open.push(Open {
                depth,
                name,
                function,
            });
        } else {
            if let Some(index) = open.iter().rev().find_map(|o| o.function) {
                outline.functions[index].complexity += language.decisions(node);
            }
            if matches!(
                language,
                Language::JavaScript | Language::TypeScript | Language::Tsx
            ) && kind == "call_expression"
            {
                if let Some(test) = js_test_case(node, text) {
                    outline.tests.push(test);
                }
            }
        }
        if cursor.goto_first_child() {
            depth += 1;
            continue;
        }
        loop {
            while open.last().is_some_and(|o| o.depth == depth) {
                open.pop();
            }
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return outline;
            }
            depth -= 1;
        }
    }
}

fn line_of(node: Node) -> u32 {
    node.start_position().row as u32 + 1
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn name_of(language: Language, node: Node, text: &str) -> String {
    let field = |n: Node, f: &str| {
        n.child_by_field_name(f)
            .map(|c| text[c.byte_range()].to_owned())
    };
    if language == Language::Rust && node.kind() == "impl_item" {
        let of = field(node, "type").unwrap_or_default();
        return match field(node, "trait") {
            Some(t) => format!("<{of} as {t}>"),
            None => of,
        };
    }
    if language == Language::Go && node.kind() == "method_declaration" {
        let receiver = node
            .child_by_field_name("receiver")
            .map(|r| text[r.byte_range()].to_owned())
            .unwrap_or_default();
        let receiver: String = receiver
            .rsplit([' ', '*', '('])
            .next()
            .unwrap_or_default()
            .trim_end_matches(')')
            .to_owned();
        return format!("{receiver}.{}", field(node, "name").unwrap_or_default());
    }
    if let Some(name) = field(node, "name") {
        return name;
    }
    // `const f = () => …`: the variable's name.
    if let Some(parent) = node.parent() {
        if matches!(
            parent.kind(),
            "variable_declarator" | "assignment_expression" | "pair"
        ) {
            let named = field(parent, "name")
                .or_else(|| field(parent, "left"))
                .or_else(|| field(parent, "key"));
            if let Some(name) = named {
                return name;
            }
        }
    }
    format!("<anonymous:{}>", line_of(node))
}

fn is_test_function(
    language: Language,
    node: Node,
    name: &str,
    text: &str,
    test_file: bool,
    open: &[Open],
) -> bool {
    match language {
        Language::Python => {
            test_file && name.starts_with("test") && open.iter().all(|o| o.function.is_none())
        }
        Language::Go => {
            test_file && node.kind() == "function_declaration" && name.starts_with("Test")
        }
        Language::Rust => {
            // `#[test]`, `#[tokio::test]`, … are the siblings before the function.
            let mut previous = node.prev_named_sibling();
            while let Some(attribute) = previous.filter(|p| p.kind() == "attribute_item") {
                if attribute_is_test(attribute, text) {
                    return true;
                }
                previous = attribute.prev_named_sibling();
            }
            false
        }
        // JavaScript's tests are calls, found apart.
        _ => false,
    }
}

/// `#[test]`, `#[tokio::test]`, `#[rstest]`, `#[test_case(…)]`.
fn attribute_is_test(attribute: Node, text: &str) -> bool {
    let Some(path) = attribute
        .named_child(0)
        .and_then(|inner| inner.named_child(0))
    else {
        return false;
    };
    let last = match path.kind() {
        "scoped_identifier" => path.child_by_field_name("name"),
        _ => Some(path),
    };
    last.is_some_and(|n| matches!(&text[n.byte_range()], "test" | "rstest" | "test_case"))
}

/// `it("name", () => …)`, `test("name", …)`, `it.only(…)`, … with a string for a name.
fn js_test_case(node: Node, text: &str) -> Option<TestCase> {
    let callee = node.child_by_field_name("function")?;
    let base = match callee.kind() {
        "identifier" => callee,
        "member_expression" => callee.child_by_field_name("object")?,
        _ => return None,
    };
    if !matches!(&text[base.byte_range()], "it" | "test" | "xit" | "xtest") {
        return None;
    }
    let arguments = node.child_by_field_name("arguments")?;
    let name = arguments.named_child(0)?;
    if !matches!(name.kind(), "string" | "template_string") {
        return None;
    }
    let body = arguments.named_child(1)?;
    Some(TestCase {
        name: text[name.byte_range()]
            .trim_matches(['"', '\'', '`'])
            .to_owned(),
        line: line_of(node),
        body: collapse(&text[body.byte_range()]),
    })
}
