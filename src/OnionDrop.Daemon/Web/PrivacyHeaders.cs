using Microsoft.AspNetCore.Http;

namespace OnionDrop.Daemon.Web;

/// <summary>Headers on every response the application writes: nothing loads, frames, leaks or stays cached.</summary>
public static class PrivacyHeaders
{
    public const string ContentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    public const string PermissionsPolicy =
        "accelerometer=(), ambient-light-sensor=(), autoplay=(), battery=(), camera=(), display-capture=(), " +
        "document-domain=(), encrypted-media=(), fullscreen=(), geolocation=(), gyroscope=(), interest-cohort=(), " +
        "magnetometer=(), microphone=(), midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(), " +
        "screen-wake-lock=(), serial=(), usb=(), web-share=(), xr-spatial-tracking=()";

    public static void Apply(IHeaderDictionary h)
    {
        h.ContentSecurityPolicy = ContentSecurityPolicy;
        h["Referrer-Policy"] = "no-referrer";
        h.XContentTypeOptions = "nosniff";
        h.XFrameOptions = "DENY";
        h["Cross-Origin-Opener-Policy"] = "same-origin";
        h["Cross-Origin-Resource-Policy"] = "same-origin";
        h["Cross-Origin-Embedder-Policy"] = "require-corp";
        h["Permissions-Policy"] = PermissionsPolicy;
        h.CacheControl = "no-store, max-age=0";
        h.Pragma = "no-cache";
        h.Remove("Server");
        h.Remove("Set-Cookie");
        h.Date = ResponseDate.Shared.Value();   // the day only: the seconds would fingerprint the server's clock
    }
}
