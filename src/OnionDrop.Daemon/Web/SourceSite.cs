using System.Buffers;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using OnionDrop.Files;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// Everything a source can reach, as one small dispatcher (three resources need no router):
/// GET / the form, POST / the upload, GET /style.css. Everything else is a calm 404 or 405 page.
/// Every response gets the privacy headers; an unexpected error gets a generic page, and only the
/// exception (no path, header, address or size) goes to the operator's log.
/// </summary>
public sealed class SourceSite(Pages pages, UploadHandler uploads, HostAllowList hosts, SubmissionCounters counters, ILogger<SourceSite> log)
{
    private static readonly byte[] StyleSheet = LoadStyleSheet();

    /// <summary>The busy page's "try again in a few minutes", for clients that read Retry-After.</summary>
    private const string BusyRetryAfterSeconds = "120";

    public async Task HandleAsync(HttpContext context)
    {
        var response = context.Response;
        response.OnStarting(static state => { PrivacyHeaders.Apply(((HttpResponse)state).Headers); return Task.CompletedTask; }, response);
        var language = PageLanguage.For(context.Request);
        try
        {
            if (!hosts.Allows(context.Request.Host))
            {
                await WriteAsync(context, language, pages.Error(language, StatusCodes.Status400BadRequest, "ErrHostTitle", "ErrHostText", nothingStored: false));
                return;
            }
            await DispatchAsync(context, language);
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; there is nobody to answer and nothing to report.
        }
        catch (Exception e)
        {
            log.LogError(e, "Unexpected error while serving a request");
            if (response.HasStarted) { context.Abort(); return; }
            response.Headers.Clear();
            await WriteAsync(context, language, pages.Error(language, StatusCodes.Status500InternalServerError, "ErrServerTitle", "ErrServerText", nothingStored: false));
        }
    }

    private async Task DispatchAsync(HttpContext context, PageLanguage language)
    {
        var request = context.Request;
        var isRead = HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method);
        switch (request.Path.Value)
        {
            case "/" when isRead:
                await WriteFormAsync(context, language);
                break;
            case "/" when HttpMethods.IsPost(request.Method):
                await ReceiveAsync(context, language);
                break;
            case "/style.css" when isRead:
                context.Response.ContentType = "text/css; charset=utf-8";
                context.Response.ContentLength = StyleSheet.Length;
                if (HttpMethods.IsGet(request.Method)) await context.Response.Body.WriteAsync(StyleSheet);
                break;
            case "/":
                context.Response.Headers.Allow = "GET, HEAD, POST";
                await WriteAsync(context, language, pages.Error(language, StatusCodes.Status405MethodNotAllowed, "ErrMethodTitle", "ErrMethodText", nothingStored: false));
                break;
            case "/style.css":
                context.Response.Headers.Allow = "GET, HEAD";
                await WriteAsync(context, language, pages.Error(language, StatusCodes.Status405MethodNotAllowed, "ErrMethodTitle", "ErrMethodText", nothingStored: false));
                break;
            default:
                await WriteAsync(context, language, pages.Error(language, StatusCodes.Status404NotFound, "ErrNotFoundTitle", "ErrNotFoundText", nothingStored: false));
                break;
        }
    }

    private async Task ReceiveAsync(HttpContext context, PageLanguage language)
    {
        Page page;
        var finish = false;
        try
        {
            var received = await uploads.ReceiveAsync(context);
            if (!received.Repeat) counters.CountReceived();
            page = pages.Receipt(language, received.Reference, received.Files, received.Bytes, received.HasMessage, received.Repeat);
        }
        catch (UploadRefused refused)
        {
            counters.CountRefused();
            if (refused.CloseConnection || context.RequestAborted.IsCancellationRequested) { context.Abort(); return; }
            page = pages.Error(language, refused.Status, refused.TitleKey, refused.TextKey, nothingStored: refused.SomethingWasSent, refused.Args);
            if (refused.Status == StatusCodes.Status503ServiceUnavailable) context.Response.Headers.RetryAfter = BusyRetryAfterSeconds;
            // The rest of the body is not wanted; don't let the connection carry it into another request.
            context.Response.Headers.Connection = "close";
            finish = uploads.LetsTheClientFinish(context.Request);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            counters.CountRefused();
            context.Abort();
            return;
        }
        catch (Exception e) when (WriteFailure.IsDiskFull(e))
        {
            counters.CountFailed();
            uploads.LogDiskFull(e);
            page = pages.Error(language, StatusCodes.Status507InsufficientStorage, "ErrDiskFullTitle", "ErrDiskFullText", nothingStored: true);
            context.Response.Headers.Connection = "close";
            finish = uploads.LetsTheClientFinish(context.Request);
        }
        catch (Exception)
        {
            counters.CountFailed();
            throw;
        }
        await WriteAsync(context, language, page);
        if (finish) await uploads.LetTheClientFinishAsync(context);
    }

    private async Task WriteAsync(HttpContext context, PageLanguage language, Page page)
    {
        var html = Encoding.UTF8.GetBytes(pages.Render(language, page));
        if (StartPage(context, language, page.Status, html.Length))
            await context.Response.Body.WriteAsync(html, context.RequestAborted);
    }

    /// <summary>The form, from its bytes rendered once, with a fresh one-time token.</summary>
    private async Task WriteFormAsync(HttpContext context, PageLanguage language)
    {
        var form = pages.FormPage(language);
        var token = Encoding.ASCII.GetBytes(RecentSubmissions.NewToken());
        if (!StartPage(context, language, StatusCodes.Status200OK, form.BeforeToken.Length + token.Length + form.AfterToken.Length)) return;
        var body = context.Response.BodyWriter;
        body.Write(form.BeforeToken);
        body.Write(token);
        body.Write(form.AfterToken);
        await body.FlushAsync(context.RequestAborted);
    }

    /// <returns>whether a body is to follow (not for HEAD)</returns>
    private static bool StartPage(HttpContext context, PageLanguage language, int status, int length)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "text/html; charset=utf-8";
        response.ContentLength = length;
        response.Headers.ContentLanguage = language.Code;
        return !HttpMethods.IsHead(context.Request.Method);
    }

    private static byte[] LoadStyleSheet()
    {
        using var stream = typeof(SourceSite).Assembly.GetManifestResourceStream("OnionDrop.Daemon.Resources.style.css")
            ?? throw new InvalidOperationException("style.css is not embedded in the daemon assembly");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
