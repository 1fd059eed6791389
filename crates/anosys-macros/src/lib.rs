//! Procedural macros for [anosys](https://docs.rs/anosys).
//!
//! This crate is the proc-macro half of the `anosys` facade, as
//! `tracing-attributes` is to `tracing`: depend on `anosys` and write
//! `#[anosys::logger]`; never use this crate directly. See
//! `anosys::logger` for the documentation.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, parse_quote_spanned, AttrStyle, Expr, FnArg, GenericArgument, Ident, ImplItemFn, LitStr, Pat,
    PathArguments, ReturnType, Stmt, Token, Type, TypeParamBound,
};

/// The arguments: `source = "…"`, `skip(a, b)`, `skip_all`, `fields(k = expr, …)`.
#[derive(Default)]
struct Args {
    source: Option<LitStr>,
    skip: Vec<Ident>,
    skip_all: bool,
    fields: Vec<(LitStr, Expr)>,
}

struct Field {
    key: LitStr,
    value: Expr,
}

impl Parse for Field {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = if input.peek(LitStr) {
            input.parse::<LitStr>()?
        } else {
            // dotted keys: fields(user.id = …)
            let mut parts = vec![input.call(Ident::parse_any_ident)?.to_string()];
            while input.peek(Token![.]) {
                input.parse::<Token![.]>()?;
                parts.push(input.call(Ident::parse_any_ident)?.to_string());
            }
            LitStr::new(&parts.join("."), Span::call_site())
        };
        input.parse::<Token![=]>()?;
        Ok(Field { key, value: input.parse()? })
    }
}

trait ParseAnyIdent {
    fn parse_any_ident(input: ParseStream) -> syn::Result<Ident>;
}

impl ParseAnyIdent for Ident {
    fn parse_any_ident(input: ParseStream) -> syn::Result<Ident> {
        use syn::ext::IdentExt;
        Ident::parse_any(input)
    }
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let name: Ident = input.call(Ident::parse_any_ident)?;
            match name.to_string().as_str() {
                "source" => {
                    input.parse::<Token![=]>()?;
                    if args.source.is_some() {
                        return Err(syn::Error::new(name.span(), "`source` is given twice"));
                    }
                    args.source = Some(input.parse().map_err(|e| {
                        syn::Error::new(e.span(), "`source` takes a string literal: #[anosys::logger(source = \"billing\")]")
                    })?);
                }
                "skip_all" => args.skip_all = true,
                "skip" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any_ident)?;
                    args.skip.extend(names);
                }
                "fields" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let fields = Punctuated::<Field, Token![,]>::parse_terminated(&content)?;
                    args.fields.extend(fields.into_iter().map(|f| (f.key, f.value)));
                }
                other => {
                    let hint = ["source", "skip", "skip_all", "fields"]
                        .into_iter()
                        .find(|known| edit_distance(other, known) <= 2)
                        .map(|known| format!(" (did you mean `{known}`?)"))
                        .unwrap_or_default();
                    return Err(syn::Error::new(
                        name.span(),
                        format!("unknown argument `{other}`{hint}; #[anosys::logger] takes `source = \"…\"`, `skip(arg, …)`, `skip_all` and `fields(key = value, …)`"),
                    ));
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

/// Logs every call of a function to anosys: one record per call, with its
/// inputs, output, error or panic, caller, duration, thread and trace.
///
/// Works on free functions, methods (`self`, `&self`, `&mut self`),
/// generic functions, `async fn`, functions returning
/// `impl Future<Output = …>`, and in trait impls. The signature,
/// visibility, attributes and docs stay as they are, and the function
/// behaves exactly as before: capture never changes what it returns or
/// panics with.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Order { cents: u64 }
///
/// #[anosys::logger(source = "billing", skip(card), fields(currency = "EUR"))]
/// fn charge(order: &Order, card: &str) -> Result<u64, std::io::Error> {
///     Ok(order.cents)
/// }
///
/// # let dir = std::env::temp_dir().join(format!("anosys-logger-doc-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// assert_eq!(charge(&Order { cents: 1999 }, "4242…").unwrap(), 1999);
/// ```
///
/// Async functions too; a call dropped before it finishes (a timeout, a
/// cancelled task) is recorded as cancelled, and logged calls made inside
/// it, across `.await` and threads of a multi-thread runtime, are its
/// children (same trace id, its span id as their parent):
///
/// ```
/// #[anosys::logger]
/// async fn fetch(id: u32) -> String {
///     format!("item {id}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let dir = std::env::temp_dir().join(format!("anosys-logger-doc2-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// assert_eq!(fetch(7).await, "item 7");
/// # }
/// ```
///
/// # What is recorded
///
/// - `source` (the argument, else the module path), the function's name
///   and module path (`code.function.name`), its definition
///   (`code.file.path`, `code.line.number`), `thread.name`, start, end and
///   duration, and the current trace and parent span.
/// - Inputs as a JSON array, one value per argument (`self` included):
///   through `serde::Serialize` where the type has it, else `Debug`, else
///   its type name; no bound is added to your types. In a generic function
///   a value of type `T` is captured through the bounds in scope. A value
///   that fails to serialise is recorded as a string saying so.
/// - The output, the same way. For `Result<T, E>`: `Ok` is the output;
///   `Err(e)` sets `error`, `error_type` (the type name of `E`),
///   `error_message` (`Display`) and `error_stack` (the `source()` chain).
/// - A panic: recorded with its message and location, then the panic goes
///   on unchanged.
/// - The caller: for sync functions (and functions returning
///   `impl Future`), the file and line of the call, through
///   `#[track_caller]` on the generated wrapper (the body runs in a closure,
///   so panics inside it still report their own locations). `async fn`
///   cannot learn its caller on stable Rust: its record names the
///   function's definition site instead, with `caller.function` set.
///
/// # Arguments
///
/// - `source = "name"`: the record's source.
/// - `skip(arg, …)`: leave these arguments out of the inputs; `skip_all`:
///   leave all out.
/// - `fields(key = expr, …)`: extra attributes, evaluated before the body
///   runs (they may use the arguments); dotted keys are allowed.
///
/// Inputs and outputs are not captured when `ANOSYS_CAPTURE_CONTENT` is
/// off.
#[proc_macro_attribute]
pub fn logger(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as Args);
    let item2: TokenStream2 = item.clone().into();
    // ImplItemFn parses free functions and methods alike (a free fn has no
    // `default`/`self` quirks that matter here).
    let func: ImplItemFn = match syn::parse(item) {
        Ok(f) => f,
        Err(_) => {
            return syn::Error::new(
                Span::call_site(),
                "#[anosys::logger] can only be used on functions and methods",
            )
            .to_compile_error()
            .into_iter()
            .chain(item2)
            .collect::<TokenStream2>()
            .into();
        }
    };
    match expand(args, func) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// `Result<…>` (any path ending in `Result`).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Group(g) => is_result(&g.elem),
        Type::Paren(p) => is_result(&p.elem),
        _ => false,
    }
}

/// The `Output` of an `impl Future<Output = …>` return type.
fn future_output(ty: &Type) -> Option<&Type> {
    let Type::ImplTrait(it) = ty else { return None };
    it.bounds.iter().find_map(|b| {
        let TypeParamBound::Trait(t) = b else { return None };
        let seg = t.path.segments.last()?;
        if seg.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(a) = &seg.arguments else { return None };
        a.args.iter().find_map(|g| match g {
            GenericArgument::AssocType(at) if at.ident == "Output" => Some(&at.ty),
            _ => None,
        })
    })
}

fn capture(expr: TokenStream2) -> TokenStream2 {
    quote! {{
        #[allow(unused_imports)]
        use ::anosys::__private::{CaptureSerialize as _, CaptureDebug as _, CaptureTypeName as _};
        (&&&::anosys::__private::Capture(#expr)).anosys_capture()
    }}
}

/// A local of the expansion: mixed-site hygiene, so the user's code can
/// neither see it nor shadow it.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// Whether `impl Trait` appears anywhere in a type (a closure's return
/// type cannot be annotated with one).
fn contains_impl(tokens: TokenStream2) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "impl",
        TokenTree::Group(g) => contains_impl(g.stream()),
        _ => false,
    })
}

/// What to do with the output once the body finished.
fn done(output_is_result: bool) -> TokenStream2 {
    let (call, ret, v, e) = (local("__anosys_call"), local("__anosys_ret"), local("__anosys_v"), local("__anosys_e"));
    let value = capture(quote!(#v));
    if output_is_result {
        quote! {
            |#call: ::anosys::__private::ActiveCall, #ret| match #ret {
                ::core::result::Result::Ok(#v) => #call.finish_ok(|| #value),
                ::core::result::Result::Err(#e) => {
                    #[allow(unused_imports)]
                    use ::anosys::__private::{
                        DescribeBoxedSendError as _, DescribeBoxedError as _, DescribeError as _,
                        DescribeDisplay as _, DescribeDebug as _, DescribeTypeName as _,
                    };
                    #call.finish_err(
                        ::anosys::__private::error_type_name(#ret),
                        (&&&&&&::anosys::__private::Describe(#e)).anosys_describe(),
                    )
                }
            }
        }
    } else {
        quote! {
            |#call: ::anosys::__private::ActiveCall, #v| #call.finish_value(|| #value)
        }
    }
}

fn expand(args: Args, func: ImplItemFn) -> syn::Result<TokenStream2> {
    let ImplItemFn { mut attrs, vis, defaultness, sig, block } = func;
    // Inner attributes of the body (`#![allow(…)]`) annotate the function:
    // they become outer ones, as they would be put back before `fn`.
    for attr in &mut attrs {
        if let AttrStyle::Inner(_) = attr.style {
            attr.style = AttrStyle::Outer;
        }
    }
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new(c.span(), "#[anosys::logger] cannot log a `const fn`"));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(v.span(), "#[anosys::logger] cannot log a variadic function"));
    }
    let is_async = sig.asyncness.is_some();
    let name = sig.ident.to_string();
    let ident_span = sig.ident.span();

    // Arguments to capture.
    let mut inputs = Vec::new();
    let mut known = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => {
                known.push("self".to_owned());
                if !args.skip_all && !args.skip.iter().any(|s| s == "self") {
                    let self_tok = Ident::new("self", r.self_token.span());
                    inputs.push(capture(quote!(&#self_tok)));
                }
            }
            FnArg::Typed(pt) => {
                if let Pat::Ident(pi) = &*pt.pat {
                    let ident = &pi.ident;
                    known.push(ident.to_string());
                    if !args.skip_all && !args.skip.iter().any(|s| s == ident) {
                        // The user's argument, read by generated code: it
                        // resolves (and errors point) as the user's
                        // token, but lints see the expansion (using `_x`
                        // here is not the user's doing).
                        let mut ident = ident.clone();
                        ident.set_span(Span::call_site().located_at(ident.span()));
                        inputs.push(capture(quote!(&#ident)));
                    }
                }
            }
        }
    }
    for s in &args.skip {
        if !known.iter().any(|k| s == k) {
            return Err(syn::Error::new(s.span(), format!("`skip({s})`: this function has no argument `{s}`")));
        }
    }
    let call = local("__anosys_call");
    let fields = args.fields.iter().map(|(key, value)| {
        let v = capture(quote!(&(#value)));
        quote!(#call.field(#key, #v);)
    });
    let source = match &args.source {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let file = quote_spanned!(ident_span=> ::core::file!());
    let line = quote_spanned!(ident_span=> ::core::line!());

    let output_ty = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, t) => Some(&**t),
    };
    let returns_future = !is_async && output_ty.and_then(future_output).is_some();
    let result_ty = if returns_future { output_ty.and_then(future_output) } else { output_ty };
    let done = done(result_ty.is_some_and(is_result));
    // A sync function learns its caller through `#[track_caller]` on this
    // outer function; the body runs in a closure, so panics inside it
    // still report their own locations.
    let track_caller = !is_async && name != "main" && sig.abi.is_none();
    let caller = if track_caller {
        quote!(::core::option::Option::Some(::core::panic::Location::caller()))
    } else {
        quote!(::core::option::Option::None)
    };
    let start = quote! {
        static __ANOSYS_SITE: ::anosys::__private::CallSite = ::anosys::__private::CallSite {
            name: #name,
            module_path: ::core::module_path!(),
            source: #source,
            file: #file,
            line: #line,
            is_async: #is_async,
        };
        #[allow(unused_mut)]
        let mut #call = ::anosys::__private::ActiveCall::start(&__ANOSYS_SITE, #caller);
        if #call.content() {
            #call.inputs(::std::vec![#(#inputs),*]);
        }
        #(#fields)*
    };
    // The body keeps the declared return type, so that `return` and `?`
    // coerce exactly as they did in the original function (an unannotated
    // closure or async block would not coerce `Box<E>` into
    // `Box<dyn Error>`). Not possible with `impl Trait`, which needs no
    // coercion anyway.
    //
    // The user's block is never nested in a generated block: as the tail
    // of one, a body on one line (`{ a + b }`) trips `unused_braces` on
    // the user's own braces. It is a closure's body (the declared type
    // as the closure's return type), or an async block's, its statements
    // after one that pins the type.
    let declared: Option<(TokenStream2, Span)> = match &sig.output {
        _ if returns_future => None,
        ReturnType::Default => Some((quote!(()), ident_span)),
        ReturnType::Type(_, t) if contains_impl(quote!(#t)) => None,
        ReturnType::Type(_, t) => Some((quote!(#t), t.span())),
    };
    let body = if is_async {
        let (future, declare) = match &declared {
            Some((t, t_span)) => {
                // The type is named outside the body, where none of the
                // body's own items can shadow it.
                let declared_fn = local("__anosys_declared");
                let mut block = block;
                // After the body's leading items (`clippy::items_after_statements`
                // would take them for the user's), before any of its code.
                let at = block.stmts.iter().take_while(|s| matches!(s, Stmt::Item(_))).count();
                // Generated code (mixed-site), though a type error it leads
                // to points at the declared type.
                let span = Span::mixed_site().located_at(*t_span);
                let declared_at = Ident::new("__anosys_declared", span);
                block.stmts.insert(
                    at,
                    parse_quote_spanned! {span=>
                        if false {
                            return #declared_at();
                        }
                    },
                );
                (
                    quote!(async move #block),
                    quote!(let #declared_fn = || -> #t { ::core::unreachable!() };),
                )
            }
            None => (quote!(async move #block), quote!()),
        };
        quote! {{
            #start
            #declare
            ::anosys::__private::LoggedFuture::new(#call, #future, #done).await
        }}
    } else if returns_future {
        let future = local("__anosys_future");
        quote! {{
            #start
            let #future = (move || #block)();
            ::anosys::__private::LoggedFuture::new(#call, #future, #done)
        }}
    } else {
        let ret = declared.map(|(t, _)| quote!(-> #t));
        quote! {{
            #start
            ::anosys::__private::run_sync(#call, move || #ret #block, #done)
        }}
    };
    let track = if track_caller { quote!(#[track_caller]) } else { quote!() };
    Ok(quote! {
        #(#attrs)*
        #track
        #vis #defaultness #sig #body
    })
}
