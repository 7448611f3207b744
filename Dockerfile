# syntax=docker/dockerfile:1
# Gateway: echo, RPC and FTP over TCP, the admin API and /metrics on 8080.
#   docker build -t gateway .
#   docker run --rm -p 7007:7007 -p 7008:7008 -p 2121:2121 -p 50000-50009:50000-50009 -p 8080:8080 \
#     -e Gateway__Admin__ApiKey=change-me gateway
# Configuration is appsettings.json overridden by environment variables (Gateway__Section__Key); no secret
# is baked in: the admin API key and FTP users come from the environment (a Kubernetes Secret).

ARG DOTNET_VERSION=10.0

# 1. Restore: only what restore reads, so this layer is rebuilt only when a project or a version changes.
FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS restore
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/Protocols/Protocols.csproj src/Protocols/
COPY src/Gateway/Gateway.csproj src/Gateway/
RUN dotnet restore src/Gateway/Gateway.csproj

# 2. Publish, with the same command the tests run (deploy/publish).
FROM restore AS publish
COPY appsettings.json ./
COPY deploy/publish deploy/
COPY src/ src/
RUN deploy/publish /app --no-restore \
    && mkdir -p /data/ftp

# 3. Runtime: the chiseled ASP.NET Core image (no shell, no package manager, non-root user APP_UID 1654).
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION}-noble-chiseled AS runtime
WORKDIR /app
COPY --from=publish /app ./
COPY --from=publish --chown=$APP_UID:$APP_UID /data /data
USER $APP_UID
ENV Gateway__Admin__Url=http://0.0.0.0:8080 \
    Gateway__Listeners__Ftp__Root=/data/ftp \
    Gateway__Listeners__Ftp__PassivePorts=50000-50009
# echo, RPC, FTP control, FTP passive data (Gateway:Listeners:Ftp:PassivePorts), admin API and /metrics
EXPOSE 7007 7008 2121 50000-50009 8080
VOLUME ["/data"]
ENTRYPOINT ["dotnet", "Gateway.dll"]
